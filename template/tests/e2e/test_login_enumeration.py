"""Logging in with an unknown email costs what a wrong password costs: one bcrypt check
at the configured cost, and the same answer; registering a taken address costs what a new
one does: one bcrypt hash (OWASP Authentication Cheat Sheet, "Authentication and Error
Messages")."""

import threading

import bcrypt
import httpx
import pytest

from app.core.resources import Resources
from tests.helpers import API, DEFAULT_PASSWORD, register_user, unique_email


def record_bcrypt_calls(monkeypatch: pytest.MonkeyPatch, function: str) -> list[bytes]:
    """What `bcrypt.<function>` (checkpw or hashpw) is given second, the stored hash or
    the salt (which names the cost), call by call, from the hashing threads."""
    recorded: list[bytes] = []
    lock = threading.Lock()
    real = getattr(bcrypt, function)

    def spy(password: bytes, second: bytes) -> object:
        with lock:
            recorded.append(second)
        return real(password, second)

    monkeypatch.setattr(bcrypt, function, spy)
    return recorded


@pytest.fixture
def bcrypt_checks(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The stored hashes bcrypt checks passwords against."""
    return record_bcrypt_calls(monkeypatch, "checkpw")


async def test_an_unknown_email_costs_one_password_check_like_a_wrong_password(
    client: httpx.AsyncClient, resources: Resources, bcrypt_checks: list[bytes]
) -> None:
    user = await register_user(client)
    bcrypt_checks.clear()  # registering logs in once to learn the user's id
    cost = f"$2b${resources.password_hasher.rounds:02d}$".encode()

    unknown = await client.post(
        f"{API}/auth/login", json={"email": unique_email("nobody"), "password": DEFAULT_PASSWORD}
    )
    after_unknown = list(bcrypt_checks)
    wrong = await client.post(
        f"{API}/auth/login", json={"email": user["email"], "password": DEFAULT_PASSWORD + "x"}
    )

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["error"]["message"] == wrong.json()["error"]["message"]
    assert len(after_unknown) == 1, "an unknown email must still cost a password check"
    assert len(bcrypt_checks) == 2
    assert all(hashed.startswith(cost) for hashed in bcrypt_checks)


async def test_registering_a_taken_address_costs_one_hash_like_a_new_one(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await register_user(client)
    hashed = record_bcrypt_calls(monkeypatch, "hashpw")
    cost = f"$2b${resources.password_hasher.rounds:02d}$".encode()

    new = await client.post(
        f"{API}/auth/register", json={"email": unique_email(), "password": DEFAULT_PASSWORD}
    )
    for_new = len(hashed)
    taken = await client.post(
        f"{API}/auth/register", json={"email": user["email"], "password": DEFAULT_PASSWORD}
    )

    assert new.status_code == taken.status_code == 202
    assert new.json() == taken.json()
    assert for_new == 1
    assert len(hashed) == 2, "a taken address must cost a hash as a new one does"
    assert all(salt.startswith(cost) for salt in hashed)
