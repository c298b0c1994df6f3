"""Rules that a row lock, a compare-and-set or a unique key guards, raced for real: two
requests at once over the app, each on its own PostgreSQL connection (asyncio.gather).

Each request's transaction is held open at a meeting point (its commit; for a refresh,
between reading the session and rotating it) until the other one gets there too, or for
HOLD seconds: without the guard both pass their checks before either commits (the race,
every time); with it the second waits on the first's lock, the hold times out, and the
second sees the first's change. SQLite serializes writers whole, so these races exist on
PostgreSQL only.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
import pytest

from app.core.resources import Resources
from app.services.crud_service import CRUDService
from app.services.user_service import UserService
from tests.helpers import (
    API,
    create_article,
    error_of,
    login_as,
    login_session,
    refresh,
    refreshed,
    register_user,
    role_id,
    set_roles,
)

HOLD = 1.0  # seconds a transaction waits at its commit for the other one


@pytest.fixture(autouse=True)
def postgres_only(resources: Resources) -> None:
    if resources.engine.dialect.name != "postgresql":
        pytest.skip("row locks race on PostgreSQL only (set TEST_DATABASE_URL)")


def meet_before(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
    """Calls of `owner.name` wait (up to HOLD) for a second call, then run."""
    barrier = asyncio.Barrier(2)
    original: Callable[..., Awaitable[Any]] = getattr(owner, name)

    async def meet_then_run(*args: Any, **kwargs: Any) -> Any:
        # Timed out: the other transaction is blocked behind this one's lock; go on alone.
        with contextlib.suppress(TimeoutError, asyncio.BrokenBarrierError):
            await asyncio.wait_for(barrier.wait(), HOLD)
        return await original(*args, **kwargs)

    monkeypatch.setattr(owner, name, meet_then_run)


@pytest.fixture
def commits_meet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Service commits wait for each other (see the module's docstring)."""
    meet_before(monkeypatch, CRUDService, "commit")


async def _me(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    user_id: str = (await client.get(f"{API}/users/me", headers=headers)).json()["id"]
    return user_id


async def _admins(
    client: httpx.AsyncClient, resources: Resources
) -> list[tuple[dict[str, str], str]]:
    admins = [await login_as(client, resources, "admin") for _ in range(2)]
    return [(headers, await _me(client, headers)) for headers in admins]


async def _active_admins(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    listing = await client.get(f"{API}/users", params={"limit": 100}, headers=headers)
    assert listing.status_code == 200, listing.text
    return sum(
        1 for user in listing.json()["items"] if user["is_active"] and "admin" in _role_names(user)
    )


def _role_names(user: dict[str, Any]) -> list[str]:
    return sorted(role["name"] for role in user["roles"])


def _one_won(responses: Sequence[httpx.Response]) -> httpx.Response:
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 409], [response.text for response in responses]
    return next(response for response in responses if response.status_code == 200)


async def test_two_administrators_demoting_each_other_at_once_leave_one(
    client: httpx.AsyncClient, resources: Resources, commits_meet: None
) -> None:
    (first, first_id), (second, second_id) = await _admins(client, resources)
    admin_role = await role_id(resources, "admin")

    responses = await asyncio.gather(
        client.delete(f"{API}/users/{second_id}/roles/{admin_role}", headers=first),
        client.delete(f"{API}/users/{first_id}/roles/{admin_role}", headers=second),
    )

    winner = _one_won(responses)
    survivor = first if winner.json()["id"] == second_id else second
    assert await _active_admins(client, survivor) == 1


async def test_two_administrators_deactivating_each_other_at_once_leave_one(
    client: httpx.AsyncClient, resources: Resources, commits_meet: None
) -> None:
    (first, first_id), (second, second_id) = await _admins(client, resources)

    responses = await asyncio.gather(
        client.post(f"{API}/users/{second_id}/deactivate", headers=first),
        client.post(f"{API}/users/{first_id}/deactivate", headers=second),
    )

    winner = _one_won(responses)
    survivor = first if winner.json()["id"] == second_id else second
    assert await _active_admins(client, survivor) == 1


async def test_revoking_the_permission_from_two_roles_at_once_keeps_one_holder(
    client: httpx.AsyncClient, resources: Resources, commits_meet: None
) -> None:
    """Two roles carry `users:admin`, each to one active user (and no one holds the
    `admin` role, which never loses a permission); each user revokes it from their own
    role at the same moment. One revocation must be refused."""
    admin = await login_as(client, resources, "admin")
    roles = []
    for name in ("deputies", "wardens"):
        created = await client.post(
            f"{API}/rbac/roles",
            headers=admin,
            json={"name": name, "permissions": ["users:admin", "roles:admin"]},
        )
        assert created.status_code == 201, created.text
        roles.append(created.json()["id"])
    deputy = await login_as(client, resources, "deputies")
    warden = await login_as(client, resources, "wardens")
    await set_roles(resources, await _me(client, admin))  # the admin role's holder leaves

    responses = await asyncio.gather(
        *(
            client.delete(f"{API}/rbac/roles/{role}/permissions/users:admin", headers=headers)
            for role, headers in zip(roles, (deputy, warden), strict=True)
        )
    )

    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
    held = [(await client.get(f"{API}/rbac/roles/{role}", headers=deputy)).json() for role in roles]
    assert sum("users:admin" in role["permissions"] for role in held) == 1


async def test_the_same_role_given_twice_at_once_is_held_once(
    client: httpx.AsyncClient, resources: Resources, commits_meet: None
) -> None:
    """Both requests see the role missing and insert it; the primary key of user_roles
    turns the second into a 409 (or it finds the role there), never a 500."""
    (admin, _), (_, other_id) = await _admins(client, resources)
    editor = await role_id(resources, "editor")

    responses = await asyncio.gather(
        *(client.put(f"{API}/users/{other_id}/roles/{editor}", headers=admin) for _ in range(2))
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses in ([200, 200], [200, 409]), [response.text for response in responses]
    user = await client.get(f"{API}/users/{other_id}", headers=admin)
    assert _role_names(user.json()) == ["admin", "editor"]


async def test_two_refreshes_with_one_token_at_once_rotate_it_once(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both refreshes read the session with the same current token before either rotates
    it (they meet where the refresh loads the user, after that read); the compare-and-set
    on the current token lets exactly one rotation through."""
    session = await login_session(client, (await register_user(client))["email"])
    meet_before(monkeypatch, UserService, "get_active")

    responses = await asyncio.gather(*(refresh(client, session) for _ in range(2)))

    winner = _one_won(responses)
    error_of(next(r for r in responses if r is not winner), 409, "conflict")
    assert (await refresh(client, refreshed(winner))).status_code == 200


async def test_two_writes_from_one_etag_at_once_let_one_through(
    client: httpx.AsyncClient, auth_headers: dict[str, str], commits_meet: None
) -> None:
    """Both editors read the same version and send its `ETag` in `If-Match`: the row
    lock taken with the comparison makes the second compare against the first's result,
    so it is refused (412) instead of silently undoing the first."""
    article = await create_article(client, auth_headers)
    url = f"{API}/articles/{article['id']}"
    etag = (await client.get(url, headers=auth_headers)).headers["ETag"]

    responses = await asyncio.gather(
        *(
            client.patch(url, json={"title": title}, headers={**auth_headers, "If-Match": etag})
            for title in ("First", "Second")
        )
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 412], [response.text for response in responses]
    winner = next(response for response in responses if response.status_code == 200)
    error_of(next(r for r in responses if r is not winner), 412, "precondition_failed")
    current = await client.get(url, headers=auth_headers)
    assert current.json()["title"] == winner.json()["title"]
    assert current.headers["ETag"] == winner.headers["ETag"]
