"""Refresh sessions: JTI rotation, replay detection, races, logout and revocation."""

import asyncio
import json
import os
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest

from app.core.resources import Resources
from app.models import AuthSession
from app.models.base import utcnow
from app.services.auth_service import denylist_key, session_ended_key
from app.services.user_service import (
    USER_SNAPSHOT_TTL_SECONDS,
    UserService,
    user_service,
    user_snapshot_key,
)
from tests.helpers import (
    API,
    DEFAULT_PASSWORD,
    NEW_PASSWORD,
    AppFactory,
    LoggedIn,
    administrator,
    error_of,
    login_session,
    refresh,
    refreshed,
    register_user,
    seconds_to_live,
)


async def _user_session(client: httpx.AsyncClient) -> LoggedIn:
    user = await register_user(client)
    return await login_session(client, user["email"])


def _jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


async def _me(client: httpx.AsyncClient, session: LoggedIn) -> httpx.Response:
    return await client.get(f"{API}/users/me", headers=session.headers)


async def test_refresh_issues_a_new_token_with_a_new_jti(client: httpx.AsyncClient) -> None:
    session = await _user_session(client)

    renewed = refreshed(await refresh(client, session))

    assert _jti(renewed.access_token) != _jti(session.access_token)
    assert renewed.session_id == session.session_id
    assert (await _me(client, renewed)).status_code == 200


async def test_the_replaced_token_stops_working_after_refresh(client: httpx.AsyncClient) -> None:
    session = await _user_session(client)
    refreshed(await refresh(client, session))

    error_of(await _me(client, session), 401, "unauthorized")


async def test_replaying_an_old_token_revokes_the_session(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await _user_session(client)
    renewed = refreshed(await refresh(client, session))
    # Leave the race window, so the old token counts as a replay, not a concurrent refresh.
    monkeypatch.setattr(resources.settings, "refresh_race_window_seconds", 0)

    replay = await refresh(client, session)

    error = error_of(replay, 401, "unauthorized")
    assert error["message"] == "This token was already used to refresh; session revoked"
    # The whole session is gone: the newest token and a further refresh both fail.
    error_of(await _me(client, renewed), 401)
    error_of(await refresh(client, renewed), 401)


async def test_two_racing_refreshes_rotate_exactly_once(client: httpx.AsyncClient) -> None:
    session = await _user_session(client)

    responses = await asyncio.gather(*(refresh(client, session) for _ in range(2)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 409], [response.text for response in responses]
    winner = next(response for response in responses if response.status_code == 200)
    loser = next(response for response in responses if response.status_code == 409)
    conflict = error_of(loser, 409, "conflict")
    assert conflict["message"] == (
        "The session was refreshed by a concurrent request; use the token that request received"
    )
    # The loser does not cost the user the session: the winner's token keeps working.
    renewed = refreshed(winner)
    assert (await _me(client, renewed)).status_code == 200
    refreshed(await refresh(client, renewed))


async def test_refresh_accepts_an_expired_access_token(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    session = await _user_session(client)
    claims = jwt.decode(session.access_token, options={"verify_signature": False})
    claims["iat"] -= 7200
    claims["exp"] -= 7200
    expired = jwt.encode(
        claims, resources.settings.secret_key.get_secret_value(), algorithm="HS256"
    )
    expired_session = LoggedIn(**{**vars(session), "access_token": expired})

    error_of(await _me(client, expired_session), 401)
    assert (await refresh(client, expired_session)).status_code == 200


async def test_refresh_refuses_a_token_from_another_key(client: httpx.AsyncClient) -> None:
    session = await _user_session(client)
    claims = jwt.decode(session.access_token, options={"verify_signature": False})
    forged = jwt.encode(claims, "a-different-secret-key-of-enough-length", algorithm="HS256")

    error_of(await refresh(client, LoggedIn(**{**vars(session), "access_token": forged})), 401)


async def test_refresh_refuses_a_wrong_secret_or_a_foreign_token(client: httpx.AsyncClient) -> None:
    mine = await _user_session(client)
    theirs = await _user_session(client)

    wrong_secret = LoggedIn(**{**vars(mine), "session_secret": "guessed"})
    foreign_token = LoggedIn(**{**vars(mine), "access_token": theirs.access_token})

    wrong = error_of(await refresh(client, wrong_secret), 401)
    assert wrong["message"] == "Invalid session"
    foreign = error_of(await refresh(client, foreign_token), 401)
    assert foreign["message"] == "The access token does not belong to this session"
    assert (await refresh(client, mine)).status_code == 200


async def test_logout_makes_the_access_token_fail_at_once(client: httpx.AsyncClient) -> None:
    session = await _user_session(client)

    response = await client.post(f"{API}/auth/logout", headers=session.headers)

    assert response.status_code == 204
    error = error_of(await _me(client, session), 401)
    assert error["message"] == "The access token has been revoked"
    error_of(await refresh(client, session), 401)


async def test_logout_all_ends_every_session(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    first = await login_session(client, user["email"])
    second = await login_session(client, user["email"])

    response = await client.post(f"{API}/auth/logout-all", headers=first.headers)

    assert response.status_code == 204
    for session in (first, second):
        ended = error_of(await _me(client, session), 401)
        assert ended["message"] == "The session has ended; log in again"
        not_renewed = error_of(await refresh(client, session), 401)
        assert not_renewed["message"] == "The session has ended; log in again"


async def test_sessions_are_listed_and_revocable_by_their_owner_only(
    client: httpx.AsyncClient,
) -> None:
    user = await register_user(client)
    first = await login_session(client, user["email"])
    second = await login_session(client, user["email"])
    stranger = await _user_session(client)

    listed = await client.get(f"{API}/auth/sessions", headers=first.headers)
    assert listed.status_code == 200
    # The most recently used first.
    assert [item["id"] for item in listed.json()] == [second.session_id, first.session_id]
    sessions = {item["id"]: item for item in listed.json()}
    assert set(sessions) == {first.session_id, second.session_id}
    assert sessions[first.session_id]["current"] is True
    assert sessions[second.session_id]["current"] is False

    url = f"{API}/auth/sessions/{second.session_id}"
    missing = error_of(await client.delete(url, headers=stranger.headers), 404, "not_found")
    assert missing["message"] == "Session not found"
    assert (await _me(client, second)).status_code == 200

    assert (await client.delete(url, headers=first.headers)).status_code == 204
    error_of(await _me(client, second), 401)
    assert (await _me(client, first)).status_code == 200
    unknown = f"{API}/auth/sessions/{uuid.uuid4()}"
    error_of(await client.delete(unknown, headers=first.headers), 404)


async def test_changing_the_password_ends_every_session(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    first = await login_session(client, user["email"])
    second = await login_session(client, user["email"])

    wrong = await client.post(
        f"{API}/auth/password",
        headers=first.headers,
        json={"current_password": "not-it", "new_password": NEW_PASSWORD},
    )
    # Not a 401: the session is fine, and clients read 401 as "logged out".
    error_of(wrong, 400, "incorrect_password")
    assert (await _me(client, first)).status_code == 200
    changed = await client.post(
        f"{API}/auth/password",
        headers=first.headers,
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert changed.status_code == 204
    for session in (first, second):
        error_of(await _me(client, session), 401)
    old = await client.post(
        f"{API}/auth/login", json={"email": user["email"], "password": DEFAULT_PASSWORD}
    )
    error_of(old, 401)
    assert (await login_session(client, user["email"], NEW_PASSWORD)).session_id


async def test_a_deactivated_user_is_refused_on_the_next_request(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    session = await _user_session(client)
    assert (await _me(client, session)).status_code == 200  # now cached

    async with resources.session_factory() as db:
        me = (await _me(client, session)).json()
        await user_service.set_active(
            db, resources.cache, uuid.UUID(me["id"]), active=False, actor=administrator()
        )

    refused = error_of(await _me(client, session), 401)
    assert refused["message"] == "User is inactive or no longer exists"
    error_of(await refresh(client, session), 401)


async def test_an_ended_session_is_marked_for_as_long_as_its_tokens_could_live(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """Not forever (the cache would fill up), and not shorter than a token's lifetime
    plus the leeway (one more second for the rounding)."""
    session = await _user_session(client)
    assert (await client.post(f"{API}/auth/logout", headers=session.headers)).status_code == 204

    marked = await seconds_to_live(
        resources.cache, session_ended_key(uuid.UUID(session.session_id))
    )

    settings = resources.settings
    longest = settings.access_token_expire_minutes * 60 + settings.jwt_leeway_seconds + 1
    assert marked is not None
    assert longest - 1.5 < marked <= longest


async def test_a_replaced_token_is_denied_for_as_long_as_it_could_be_accepted(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """Its lifetime plus the leeway, from the refresh that replaced it."""
    session = await _user_session(client)
    replaced = jwt.decode(session.access_token, options={"verify_signature": False})

    refreshed(await refresh(client, session))

    denied = await seconds_to_live(resources.cache, denylist_key(replaced["jti"]))
    longest = replaced["exp"] - time.time() + resources.settings.jwt_leeway_seconds
    assert denied is not None
    assert longest - 1.5 < denied <= longest + 0.1


@pytest.mark.parametrize("seconds_left", [0, 1])
async def test_a_token_at_the_end_of_its_leeway_is_denied_for_what_is_left(
    client: httpx.AsyncClient, resources: Resources, seconds_left: int
) -> None:
    """Refreshed with a token past its expiry: with a second of leeway left it is denied
    for that second; with none, it needs no entry (one kept for 0 s is an error on Redis)."""
    settings = resources.settings
    for _ in range(3):  # until a refresh runs within one whole second, as planned
        session = await _user_session(client)
        claims = jwt.decode(session.access_token, options={"verify_signature": False})
        await asyncio.sleep(1 - time.time() % 1)  # just past a whole second
        second = int(time.time())
        claims["exp"] = second - settings.jwt_leeway_seconds + seconds_left
        claims["iat"] = claims["exp"] - 60
        late = jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm="HS256")
        response = await refresh(client, LoggedIn(**{**vars(session), "access_token": late}))
        if int(time.time()) == second:
            break
    else:
        pytest.fail("no refresh ran within one second (a very busy machine)")

    assert response.status_code == 200, response.text
    key = denylist_key(claims["jti"])
    if seconds_left:
        denied = await seconds_to_live(resources.cache, key)
        assert denied is not None
        assert 0 < denied <= seconds_left
    else:
        assert await resources.cache.get(key) is None


async def test_a_token_whose_claims_name_no_user_is_refused(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """Signed with the service's key, but its subject is not a user id."""
    session = await _user_session(client)
    claims = jwt.decode(session.access_token, options={"verify_signature": False})
    claims["sub"] = "not-a-user-id"
    odd = jwt.encode(claims, resources.settings.secret_key.get_secret_value(), algorithm="HS256")

    response = await _me(client, LoggedIn(**{**vars(session), "access_token": odd}))

    assert error_of(response, 401)["message"] == "Invalid access token"


async def test_sessions_list_the_client_as_it_logged_in(client: httpx.AsyncClient) -> None:
    """Its address, and its user agent cut to 255 characters, or none if it sent none."""
    user = await register_user(client)
    for agent in ("", "x" * 300):
        response = await client.post(
            f"{API}/auth/login",
            json={"email": user["email"], "password": DEFAULT_PASSWORD},
            headers={"User-Agent": agent},
        )
        assert response.status_code == 200, response.text
    session = await login_session(client, user["email"])

    listed = (await client.get(f"{API}/auth/sessions", headers=session.headers)).json()

    agents = sorted(str(item["user_agent"]) for item in listed)
    assert agents == sorted(["None", "x" * 255, f"python-httpx/{httpx.__version__}"])
    assert {item["ip_address"] for item in listed} == {"127.0.0.1"}


@pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"),
    reason="two instances share state only through Redis (the in-process cache is per process)",
)
async def test_logout_through_one_instance_is_honoured_by_another(
    app_factory: AppFactory,
) -> None:
    async with app_factory() as first, app_factory() as second:
        user = await register_user(first)
        session = await login_session(first, user["email"])
        assert (await _me(second, session)).status_code == 200

        assert (await first.post(f"{API}/auth/logout", headers=session.headers)).status_code == 204

        error_of(await _me(second, session), 401)


async def test_the_replaced_token_within_the_race_window_keeps_the_session(
    client: httpx.AsyncClient,
) -> None:
    session = await _user_session(client)
    renewed = refreshed(await refresh(client, session))

    late_twin = await refresh(client, session)

    error_of(late_twin, 409, "conflict")
    assert (await _me(client, renewed)).status_code == 200


async def test_a_login_past_the_session_limit_ends_the_least_recently_used(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources.settings, "sessions_max_per_user", 2)
    user = await register_user(client)
    first = await login_session(client, user["email"])
    second = await login_session(client, user["email"])
    first = refreshed(await refresh(client, first))  # now more recently used than second

    third = await login_session(client, user["email"])

    error_of(await _me(client, second), 401, "unauthorized")
    error_of(await refresh(client, second), 401, "unauthorized")
    listed = await client.get(f"{API}/auth/sessions", headers=third.headers)
    assert listed.status_code == 200
    assert {entry["id"] for entry in listed.json()} == {
        str(first.session_id),
        str(third.session_id),
    }
    assert (await _me(client, first)).status_code == 200


@pytest.mark.parametrize(
    ("sent", "listed"),
    [("Mañana/1.0 (日本)".encode(), "Mañana/1.0 (日本)"), (b"Old/\xe9", "Old/\xe9")],
)
async def test_a_sessions_user_agent_is_listed_as_the_client_sent_it(
    client: httpx.AsyncClient, sent: bytes, listed: str
) -> None:
    """UTF-8 is read as UTF-8 (Starlette decodes headers as Latin-1); other bytes as sent."""
    user = await register_user(client)
    session = await login_session(client, user["email"], headers={b"User-Agent": sent})

    sessions = await client.get(f"{API}/auth/sessions", headers=session.headers)

    assert [entry["user_agent"] for entry in sessions.json()] == [listed]


async def _age_session(resources: Resources, session: LoggedIn, **columns: timedelta) -> None:
    """Move the session's timestamps (`last_used_at`, `expires_at`) by the given amounts."""
    async with resources.session_factory() as db:
        row = await db.get(AuthSession, uuid.UUID(session.session_id))
        assert row is not None
        for column, shift in columns.items():
            setattr(row, column, getattr(row, column) + shift)
        await db.commit()


async def test_a_session_idle_for_longer_than_the_limit_cannot_be_refreshed(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    idle_limit = timedelta(hours=resources.settings.session_idle_timeout_hours)
    idle, active = await _user_session(client), await _user_session(client)
    await _age_session(resources, idle, last_used_at=-idle_limit - timedelta(seconds=1))
    await _age_session(resources, active, last_used_at=-idle_limit + timedelta(minutes=1))

    error = error_of(await refresh(client, idle), 401)
    assert error["message"] == "The session has ended; log in again"
    listed = await client.get(f"{API}/auth/sessions", headers=idle.headers)
    assert idle.session_id not in [item["id"] for item in listed.json()]
    assert (await refresh(client, active)).status_code == 200


async def test_a_session_past_its_lifetime_cannot_be_refreshed(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    expired, live = await _user_session(client), await _user_session(client)
    async with resources.session_factory() as db:
        row = await db.get(AuthSession, uuid.UUID(expired.session_id))
        assert row is not None
        lifetime = row.expires_at - utcnow()
    # Used a moment ago, so only the absolute lifetime can end it.
    await _age_session(resources, expired, expires_at=-lifetime - timedelta(seconds=1))
    await _age_session(resources, live, expires_at=-lifetime + timedelta(minutes=1))

    error = error_of(await refresh(client, expired), 401)
    assert error["message"] == "The session has ended; log in again"
    assert (await refresh(client, live)).status_code == 200


async def test_a_refresh_racing_a_revocation_rotates_nothing(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh read its session open; "log out everywhere" revokes it before the
    refresh writes. The compare-and-set (`revoked_at IS NULL`) must then refuse the
    rotation: no new token for a revoked session."""
    if resources.engine.dialect.name != "postgresql":
        pytest.skip("SQLite queues writers for the whole database: no such interleaving")
    user = await register_user(client)
    racing = await login_session(client, user["email"])
    other = await login_session(client, user["email"])
    assert (await _me(client, other)).status_code == 200  # cached: logout-all reads no user
    read, release = asyncio.Event(), asyncio.Event()
    get_active = UserService.get_active

    async def hold_once(self: UserService, *args: Any) -> Any:
        if not read.is_set():
            read.set()
            await release.wait()
        return await get_active(self, *args)

    monkeypatch.setattr(UserService, "get_active", hold_once)
    pending = asyncio.create_task(refresh(client, racing))
    await asyncio.wait_for(read.wait(), timeout=30)
    ended = await client.post(f"{API}/auth/logout-all", headers=other.headers)
    assert ended.status_code == 204, ended.text
    release.set()

    error_of(await pending, 409)
    async with resources.session_factory() as db:
        row = await db.get(AuthSession, uuid.UUID(racing.session_id))
        assert row is not None
        assert row.revoked_at is not None
        assert row.rotated_at is None


async def test_a_cached_snapshot_of_an_inactive_user_is_refused(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """The snapshots this version caches are of active users only; one written otherwise
    (an older release during a rolling deploy, a hand-edited cache) still authenticates
    nobody."""
    session = await _user_session(client)
    me = (await _me(client, session)).json()  # cached now
    key = user_snapshot_key(uuid.UUID(me["id"]))
    cached = await resources.cache.get(key)
    assert cached is not None
    await resources.cache.set(
        key, json.dumps(json.loads(cached) | {"is_active": False}), USER_SNAPSHOT_TTL_SECONDS
    )

    refused = error_of(await _me(client, session), 401)
    assert refused["message"] == "User is inactive or no longer exists"
