"""Password checks waiting for bcrypt hold nothing else: no database connection, so a
flood of them (wrong logins, password changes) cannot make every other request wait for
the pool (on SQLite, a password-change flood made a victim's login wait 36 s)."""

import asyncio
import threading

import httpx
import pytest

from app.core import guessability
from app.core.resources import Resources
from tests.helpers import API, DEFAULT_PASSWORD, error_of, login, register_user, unique_email


async def test_requests_waiting_for_a_hash_hold_no_database_connection(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await register_user(client, email=unique_email("flooder"))
    headers = await login(client, user["email"])
    hasher = resources.password_hasher
    release = threading.Event()
    verify = hasher._verify_sync

    def held_verify(password: str, hashed: str) -> bool:  # a hash that takes a while
        release.wait(timeout=30)
        return verify(password, hashed)

    monkeypatch.setattr(hasher, "_verify_sync", held_verify)
    pool = resources.engine.sync_engine.pool
    change = {"current_password": "not-the-password", "new_password": "x" * 20}
    login_body = {"email": user["email"], "password": DEFAULT_PASSWORD}
    requests = [
        *(client.post(f"{API}/auth/password", headers=headers, json=change) for _ in range(2)),
        client.post(f"{API}/auth/login", json=login_body),
    ]
    tasks = [asyncio.ensure_future(request) for request in requests]
    try:
        for _ in range(500):
            if hasher._pending == len(tasks):
                break
            await asyncio.sleep(0.01)
        assert hasher._pending == len(tasks)  # every request is waiting for its hash
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        release.set()
        responses = await asyncio.gather(*tasks)
    assert [response.status_code for response in responses] == [400, 400, 200]


async def test_password_checks_past_the_estimates_queue_get_503_at_once(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each new password's guessability estimate costs up to 0.2 s of CPU, one at a time:
    an anonymous flood of registrations once queued without bound behind them (four
    costly ones made a fifth client's registration take 14 s)."""
    monkeypatch.setattr(guessability, "MAX_WAITING_ESTIMATES", 2)
    bodies = [{"email": unique_email("queued"), "password": DEFAULT_PASSWORD} for _ in range(4)]
    with guessability._ONE_AT_A_TIME:  # the estimating thread is busy
        tasks = [
            asyncio.ensure_future(client.post(f"{API}/auth/register", json=body)) for body in bodies
        ]
        for _ in range(500):
            if sum(task.done() for task in tasks) == 2:
                break
            await asyncio.sleep(0.01)
        refused = [task.result() for task in tasks if task.done()]
    answered = await asyncio.gather(*tasks)

    assert len(refused) == 2
    for response in refused:
        error = error_of(response, 503, "server_busy")
        assert error["details"] == {"retry_after_seconds": 1}
        assert response.headers["Retry-After"] == "1"
    assert sorted(response.status_code for response in answered) == [202, 202, 503, 503]
