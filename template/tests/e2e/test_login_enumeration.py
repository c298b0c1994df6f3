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


@pytest.fixture
def bcrypt_checks(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The stored hashes bcrypt checks passwords against, from the hashing threads."""
    checked: list[bytes] = []
    lock = threading.Lock()
    real_checkpw = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        with lock:
            checked.append(hashed)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    return checked


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
    hashed: list[bytes] = []
    lock = threading.Lock()
    real_hashpw = bcrypt.hashpw

    def spy(password: bytes, salt: bytes) -> bytes:
        with lock:
            hashed.append(salt)
        return real_hashpw(password, salt)

    user = await register_user(client)
    monkeypatch.setattr(bcrypt, "hashpw", spy)
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
