"""A login in flight does not outlive a session end that commits while it checks the
password (issue #17, second review, finding 2).

A login reads the user and its hash, runs bcrypt (tens of milliseconds, off the event
loop), then opens a session. A password change, a reset, "log out everywhere" or a
deactivation (even one undone at once) that commits in between must fail it: opening
the session re-reads the user row under a row lock and compares it with what the login
read before bcrypt. The logins here are held right after bcrypt, truly in flight on
the database, while the session end commits; then they go on.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.resources import Resources
from app.models import AuthSession, User
from app.services import one_time_tokens
from app.services.one_time_tokens import TokenPurpose
from app.services.user_service import UserService
from tests.helpers import (
    API,
    DEFAULT_PASSWORD,
    NEW_PASSWORD,
    LoggedIn,
    login_as,
    login_session,
    register_user,
)

IN_FLIGHT = 4


async def _open_sessions(resources: Resources, user_id: str) -> int:
    async with resources.session_factory() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(AuthSession)
            .where(AuthSession.user_id == uuid.UUID(user_id), AuthSession.revoked_at.is_(None))
        )
    return count or 0


SessionEnd = Callable[[httpx.AsyncClient, Resources, dict[str, str], LoggedIn], Awaitable[None]]


async def _change_password(
    client: httpx.AsyncClient, resources: Resources, user: dict[str, str], own: LoggedIn
) -> None:
    response = await client.post(
        f"{API}/auth/password",
        headers=own.headers,
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 204, response.text


async def _reset_password(
    client: httpx.AsyncClient, resources: Resources, user: dict[str, str], own: LoggedIn
) -> None:
    ttl = resources.settings.password_reset_ttl_minutes * 60
    token = await one_time_tokens.issue(
        resources.cache, TokenPurpose.RESET_PASSWORD, uuid.UUID(user["id"]), ttl
    )
    response = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 204, response.text


async def _logout_everywhere(
    client: httpx.AsyncClient, resources: Resources, user: dict[str, str], own: LoggedIn
) -> None:
    response = await client.post(f"{API}/auth/logout-all", headers=own.headers)
    assert response.status_code == 204, response.text


async def _deactivate_and_reactivate(
    client: httpx.AsyncClient, resources: Resources, user: dict[str, str], own: LoggedIn
) -> None:
    admin = await login_as(client, resources, "admin")
    for action in ("deactivate", "activate"):
        response = await client.post(f"{API}/users/{user['id']}/{action}", headers=admin)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "end_sessions",
    [_change_password, _reset_password, _logout_everywhere, _deactivate_and_reactivate],
)
async def test_a_login_in_flight_does_not_outlive_a_session_end(
    client: httpx.AsyncClient,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
    end_sessions: SessionEnd,
) -> None:
    user = await register_user(client)
    own = await login_session(client, user["email"])
    hasher = resources.password_hasher
    verify = hasher.verify_and_update
    checked, release = asyncio.Event(), asyncio.Event()
    held = 0

    async def held_after_bcrypt(password: str, hashed: str) -> tuple[bool, str | None]:
        # The first IN_FLIGHT checks (the logins) wait after bcrypt; later ones (the
        # password change's own check) go through.
        nonlocal held
        result = await verify(password, hashed)
        if held < IN_FLIGHT:
            held += 1
            if held == IN_FLIGHT:
                checked.set()
            await release.wait()
        return result

    monkeypatch.setattr(hasher, "verify_and_update", held_after_bcrypt)
    logins = [
        asyncio.create_task(
            client.post(
                f"{API}/auth/login", json={"email": user["email"], "password": DEFAULT_PASSWORD}
            )
        )
        for _ in range(IN_FLIGHT)
    ]
    await asyncio.wait_for(checked.wait(), timeout=30)

    await end_sessions(client, resources, user, own)
    release.set()
    answers = await asyncio.gather(*logins)

    assert {response.status_code for response in answers} <= {200, 401}
    still_open = await _open_sessions(resources, user["id"])
    assert still_open == 0, [response.status_code for response in answers]


async def test_a_session_end_waits_for_a_login_that_holds_the_user_row(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other order: the login has compared the row and holds its lock when "log out
    everywhere" starts. The lock makes logout-all wait for the login's commit and then
    end its new session too; without it, logout-all reads the sessions before the new
    one exists and leaves it open."""
    if resources.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no row locks: its writers queue for the whole database")
    user = await register_user(client)
    own = await login_session(client, user["email"])
    locked, release = asyncio.Event(), asyncio.Event()
    lock_unchanged = UserService.lock_unchanged

    async def lock_then_hold(self: UserService, db: AsyncSession, user: User) -> None:
        await lock_unchanged(self, db, user)
        locked.set()
        await release.wait()

    monkeypatch.setattr(UserService, "lock_unchanged", lock_then_hold)
    login = asyncio.create_task(
        client.post(
            f"{API}/auth/login", json={"email": user["email"], "password": DEFAULT_PASSWORD}
        )
    )
    await asyncio.wait_for(locked.wait(), timeout=30)
    logout_all = asyncio.create_task(client.post(f"{API}/auth/logout-all", headers=own.headers))
    await asyncio.sleep(1.0)  # long enough for logout-all to finish, were it not blocked
    release.set()
    answers = await asyncio.gather(login, logout_all)

    assert [response.status_code for response in answers] == [200, 204]
    assert await _open_sessions(resources, user["id"]) == 0
