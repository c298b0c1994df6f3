"""Permissions live in the cached user snapshot, and a change to roles or grants takes
effect on the very next request (with Redis and with the in-process cache)."""

import httpx
import pytest

from app.core.cache import RedisCache
from app.core.resources import Resources
from app.services.user_service import PERMISSIONS_VERSION_KEY
from tests.helpers import (
    API,
    AppFactory,
    app_engines,
    error_of,
    login,
    login_as,
    recorded_queries,
    register_user,
    role_id,
    set_roles,
)

ARTICLES = f"{API}/articles"


@pytest.fixture
async def admin_headers(client: httpx.AsyncClient, resources: Resources) -> dict[str, str]:
    return await login_as(client, resources, "admin")


async def _reviewer(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> tuple[str, dict[str, str]]:
    """A custom role granting articles:read, and headers of its only holder."""
    created = await client.post(
        f"{API}/rbac/roles",
        headers=admin,
        json={"name": "reviewer", "permissions": ["articles:read"]},
    )
    assert created.status_code == 201, created.text
    headers = await login_as(client, resources, "reviewer")
    assert (await client.get(ARTICLES, headers=headers)).status_code == 200  # now cached
    return created.json()["id"], headers


async def test_a_revoked_permission_stops_working_on_the_next_request(
    client: httpx.AsyncClient, resources: Resources, admin_headers: dict[str, str]
) -> None:
    reviewer_id, headers = await _reviewer(client, resources, admin_headers)

    revoked = await client.delete(
        f"{API}/rbac/roles/{reviewer_id}/permissions/articles:read", headers=admin_headers
    )

    assert revoked.json()["permissions"] == []
    error_of(await client.get(ARTICLES, headers=headers), 403, "forbidden")


async def test_a_granted_permission_works_on_the_next_request(
    client: httpx.AsyncClient, resources: Resources, admin_headers: dict[str, str]
) -> None:
    reviewer_id, headers = await _reviewer(client, resources, admin_headers)
    article = {"title": "T", "content": "C"}
    error_of(await client.post(ARTICLES, headers=headers, json=article), 403)

    await client.put(
        f"{API}/rbac/roles/{reviewer_id}/permissions/articles:write", headers=admin_headers
    )

    assert (await client.post(ARTICLES, headers=headers, json=article)).status_code == 201


async def test_deleting_a_role_takes_it_from_its_holders_at_once(
    client: httpx.AsyncClient, resources: Resources, admin_headers: dict[str, str]
) -> None:
    reviewer_id, headers = await _reviewer(client, resources, admin_headers)

    deleted = await client.delete(f"{API}/rbac/roles/{reviewer_id}", headers=admin_headers)

    assert deleted.status_code == 204
    error_of(await client.get(ARTICLES, headers=headers), 403)
    assert (await client.get(f"{API}/users/me", headers=headers)).json()["roles"] == []


async def test_removing_a_users_role_takes_effect_on_their_next_request(
    client: httpx.AsyncClient, resources: Resources, admin_headers: dict[str, str]
) -> None:
    user = await register_user(client)
    headers = await login(client, user["email"])
    assert (await client.get(ARTICLES, headers=headers)).status_code == 200
    author_id = await role_id(resources, "author")

    removed = await client.delete(
        f"{API}/users/{user['id']}/roles/{author_id}", headers=admin_headers
    )

    assert removed.json()["roles"] == []
    error_of(await client.get(ARTICLES, headers=headers), 403)
    added = await client.put(f"{API}/users/{user['id']}/roles/{author_id}", headers=admin_headers)
    assert [role["name"] for role in added.json()["roles"]] == ["author"]
    assert (await client.get(ARTICLES, headers=headers)).status_code == 200


async def test_a_cached_request_costs_one_cache_round_trip_and_no_query(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = await login_as(client, resources, "author")
    await client.get(f"{API}/users/me", headers=headers)  # builds and caches the snapshot
    cache_calls: list[str] = []
    for name in ("get", "get_many", "get_many_and_count", "set", "add", "delete", "pop"):
        method = getattr(resources.cache, name)

        async def spy(*args: object, _name: str = name, _method: object = method) -> object:
            cache_calls.append(_name)
            return await _method(*args)  # type: ignore[operator]

        monkeypatch.setattr(resources.cache, name, spy)

    with recorded_queries(*app_engines(resources)) as queries:
        me = await client.get(f"{API}/users/me", headers=headers)
        articles = await client.get(ARTICLES, headers=headers)

    assert me.status_code == articles.status_code == 200
    assert "articles:publish" in me.json()["permissions"]
    assert me.json()["roles"] == ["author"]
    # Authentication and the rate limit's count share one round trip per request; the
    # list then misses its page cache (one read) and stores the page it built.
    assert cache_calls == ["get_many_and_count", "get_many_and_count", "get_many", "set"]
    # /users/me is served from the snapshot; the article list queries articles only.
    assert [query for query in queries if "users" in query and "articles" not in query] == []
    assert len(queries) == 1  # the page, with its total from a window function


async def test_a_lost_version_key_rebuilds_snapshots_safely(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    headers = await login_as(client, resources, "viewer")
    assert (await client.get(ARTICLES, headers=headers)).status_code == 200
    await set_roles(resources, (await client.get(f"{API}/users/me", headers=headers)).json()["id"])
    await resources.cache.delete(PERMISSIONS_VERSION_KEY)  # evicted, or the cache was flushed

    error_of(await client.get(ARTICLES, headers=headers), 403)
    assert await resources.cache.get(PERMISSIONS_VERSION_KEY) is not None
    with recorded_queries(resources.engine) as queries:
        error_of(await client.get(ARTICLES, headers=headers), 403)
    assert queries == []


async def test_every_instance_sees_a_revocation_at_once(
    client: httpx.AsyncClient,
    resources: Resources,
    admin_headers: dict[str, str],
    app_factory: AppFactory,
) -> None:
    if not isinstance(resources.cache, RedisCache):
        pytest.skip(
            "instances share state only through Redis (the in-process cache is per process)"
        )
    reviewer_id, headers = await _reviewer(client, resources, admin_headers)
    async with app_factory() as other_instance:
        assert (await other_instance.get(ARTICLES, headers=headers)).status_code == 200

        await client.delete(
            f"{API}/rbac/roles/{reviewer_id}/permissions/articles:read", headers=admin_headers
        )

        error_of(await other_instance.get(ARTICLES, headers=headers), 403)
