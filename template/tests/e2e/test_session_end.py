"""Every way a session ends stops every access token of that session at once.

The race: a client refreshing in a loop while "log out everywhere" runs from another
session. A refresh that commits between logout-all reading the sessions and revoking
them hands out a token whose JTI the deny-list never hears of; the session's end
marker, read with every request, refuses it anyway.
"""

import asyncio

import httpx

from tests.helpers import (
    API,
    LoggedIn,
    error_of,
    login_session,
    refresh,
    refreshed,
    register_user,
)

TRIALS = 20
RACING_SESSIONS = 4


async def _refresh_until(
    client: httpx.AsyncClient, session: LoggedIn, done: asyncio.Event, issued: list[LoggedIn]
) -> None:
    """Refresh in a loop until logout-all has answered (and a few times after)."""
    after_done = 0
    while after_done < 3:
        if done.is_set():
            after_done += 1
        response = await refresh(client, session)
        if response.status_code == 200:
            session = refreshed(response)
            issued.append(session)
        elif response.status_code != 409:  # 409: lost to a concurrent refresh, go on
            return  # the session has ended: refresh refuses it (401)


async def _logout_all(client: httpx.AsyncClient, session: LoggedIn, done: asyncio.Event) -> None:
    await asyncio.sleep(0.005)  # let the refresh loops get going
    response = await client.post(f"{API}/auth/logout-all", headers=session.headers)
    assert response.status_code == 204, response.text
    done.set()


async def test_no_token_from_a_refresh_racing_logout_all_keeps_working(
    client: httpx.AsyncClient,
) -> None:
    survivors: list[int] = []
    for trial in range(TRIALS):
        user = await register_user(client)
        racing = [await login_session(client, user["email"]) for _ in range(RACING_SESSIONS)]
        other = await login_session(client, user["email"])
        issued: list[LoggedIn] = []
        done = asyncio.Event()

        await asyncio.gather(
            _logout_all(client, other, done),
            *(_refresh_until(client, session, done, issued) for session in racing),
        )

        for session in [*racing, *issued, other]:
            me = await client.get(f"{API}/users/me", headers=session.headers)
            if me.status_code != 401:
                survivors.append(trial)
    assert not survivors, f"tokens kept working after logout-all in trials {sorted(set(survivors))}"


async def test_every_token_of_a_revoked_session_is_refused(client: httpx.AsyncClient) -> None:
    """A token the deny-list never saw (here: an older one, rotated away without being
    denied, as a racing refresh's token is) is still refused once its session ended."""
    user = await register_user(client)
    session = await login_session(client, user["email"])
    other = await login_session(client, user["email"])

    response = await client.delete(
        f"{API}/auth/sessions/{session.session_id}", headers=other.headers
    )
    assert response.status_code == 204, response.text

    error = error_of(await client.get(f"{API}/users/me", headers=session.headers), 401)
    assert "ended" in error["message"] or "revoked" in error["message"]
    assert (await client.get(f"{API}/users/me", headers=other.headers)).status_code == 200
