"""Refresh sessions: JTI rotation, replay detection, races, logout and revocation."""

import asyncio
import os
import uuid

import httpx
import jwt
import pytest

from app.core.resources import Resources
from app.services.user_service import user_service
from tests.helpers import (
    API,
    DEFAULT_PASSWORD,
    AppFactory,
    LoggedIn,
    error_of,
    login_session,
    refresh,
    refreshed,
    register_user,
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
    assert "revoked" in error["message"]
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
    error_of(loser, 409, "conflict")
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

    error_of(await refresh(client, wrong_secret), 401)
    error_of(await refresh(client, foreign_token), 401)
    assert (await refresh(client, mine)).status_code == 200


async def test_logout_makes_the_access_token_fail_at_once(client: httpx.AsyncClient) -> None:
    session = await _user_session(client)

    response = await client.post(f"{API}/auth/logout", headers=session.headers)

    assert response.status_code == 204
    error = error_of(await _me(client, session), 401)
    assert "revoked" in error["message"]
    error_of(await refresh(client, session), 401)


async def test_logout_all_ends_every_session(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    first = await login_session(client, user["email"])
    second = await login_session(client, user["email"])

    response = await client.post(f"{API}/auth/logout-all", headers=first.headers)

    assert response.status_code == 204
    for session in (first, second):
        error_of(await _me(client, session), 401)
        error_of(await refresh(client, session), 401)


async def test_sessions_are_listed_and_revocable_by_their_owner_only(
    client: httpx.AsyncClient,
) -> None:
    user = await register_user(client)
    first = await login_session(client, user["email"])
    second = await login_session(client, user["email"])
    stranger = await _user_session(client)

    listed = await client.get(f"{API}/auth/sessions", headers=first.headers)
    assert listed.status_code == 200
    sessions = {item["id"]: item for item in listed.json()}
    assert set(sessions) == {first.session_id, second.session_id}
    assert sessions[first.session_id]["current"] is True
    assert sessions[second.session_id]["current"] is False

    url = f"{API}/auth/sessions/{second.session_id}"
    error_of(await client.delete(url, headers=stranger.headers), 404, "not_found")
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
        json={"current_password": "not-it", "new_password": "a brand new passphrase"},
    )
    error_of(wrong, 401)
    changed = await client.post(
        f"{API}/auth/password",
        headers=first.headers,
        json={"current_password": DEFAULT_PASSWORD, "new_password": "a brand new passphrase"},
    )

    assert changed.status_code == 204
    for session in (first, second):
        error_of(await _me(client, session), 401)
    old = await client.post(
        f"{API}/auth/login", json={"email": user["email"], "password": DEFAULT_PASSWORD}
    )
    error_of(old, 401)
    assert (await login_session(client, user["email"], "a brand new passphrase")).session_id


async def test_a_deactivated_user_is_refused_on_the_next_request(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    session = await _user_session(client)
    assert (await _me(client, session)).status_code == 200  # now cached

    async with resources.session_factory() as db:
        me = (await _me(client, session)).json()
        await user_service.set_active(db, resources.cache, uuid.UUID(me["id"]), active=False)

    error_of(await _me(client, session), 401)
    error_of(await refresh(client, session), 401)


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
