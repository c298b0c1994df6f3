"""The administration API: the catalog, roles and grants, and users' roles and status."""

import uuid

import httpx
import pytest

from app.core.rbac import ACTIONS, DEFAULT_ROLES, FEATURES, PERMISSIONS
from app.core.resources import Resources
from tests.helpers import (
    API,
    error_of,
    login,
    login_as,
    recorded_queries,
    register_user,
    role_id,
)

RBAC = f"{API}/rbac"
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
async def admin(client: httpx.AsyncClient, resources: Resources) -> dict[str, str]:
    return await login_as(client, resources, "admin")


async def test_the_catalog_is_listed_as_defined(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    features = (await client.get(f"{RBAC}/features", headers=admin)).json()
    actions = (await client.get(f"{RBAC}/actions", headers=admin)).json()
    permissions = (await client.get(f"{RBAC}/permissions", headers=admin)).json()

    assert {feature["name"]: feature["description"] for feature in features} == FEATURES
    assert {action["name"]: action["description"] for action in actions} == ACTIONS
    assert [permission["name"] for permission in permissions] == sorted(PERMISSIONS)
    assert {"name": "articles:publish", "feature": "articles", "action": "publish"} in permissions


async def test_default_roles_are_system_roles_with_their_grants(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    roles = (await client.get(f"{RBAC}/roles", headers=admin)).json()

    assert {role["name"]: set(role["permissions"]) for role in roles} == {
        role.name: role.permissions for role in DEFAULT_ROLES
    }
    assert all(role["is_system"] for role in roles)


async def test_create_rename_and_delete_a_role(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    created = await client.post(
        f"{RBAC}/roles",
        headers=admin,
        json={"name": "reviewer", "description": "Reads", "permissions": ["articles:read"]},
    )
    assert created.status_code == 201, created.text
    role = created.json()
    assert (role["name"], role["is_system"], role["permissions"]) == (
        "reviewer",
        False,
        ["articles:read"],
    )
    url = f"{RBAC}/roles/{role['id']}"

    renamed = await client.patch(url, headers=admin, json={"name": "critic"})
    assert renamed.json()["name"] == "critic"
    assert renamed.json()["description"] == "Reads"
    assert (await client.delete(url, headers=admin)).status_code == 204
    error_of(await client.get(url, headers=admin), 404, "not_found")


async def test_role_names_are_unique(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    other = await client.post(f"{RBAC}/roles", headers=admin, json={"name": "other"})

    duplicate = await client.post(f"{RBAC}/roles", headers=admin, json={"name": "editor"})
    renamed_onto = await client.patch(
        f"{RBAC}/roles/{other.json()['id']}", headers=admin, json={"name": "viewer"}
    )

    assert "'editor' already exists" in error_of(duplicate, 409, "conflict")["message"]
    assert "'viewer' already exists" in error_of(renamed_onto, 409, "conflict")["message"]


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "reviewer", "permissions": ["articles:review"]},
        {"name": "Reviewer"},
        {"name": "r"},
        {"name": "reviewer", "is_system": True},
    ],
)
async def test_invalid_roles_are_refused(
    client: httpx.AsyncClient, admin: dict[str, str], payload: dict[str, object]
) -> None:
    response = await client.post(f"{RBAC}/roles", headers=admin, json=payload)

    error_of(response, 422, "request_validation_error")


async def test_system_roles_cannot_be_renamed_or_deleted(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    url = f"{RBAC}/roles/{await role_id(resources, 'admin')}"

    renamed = await client.patch(url, headers=admin, json={"name": "root"})
    deleted = await client.delete(url, headers=admin)
    described = await client.patch(url, headers=admin, json={"description": "Operators"})

    assert "cannot be renamed" in error_of(renamed, 409, "conflict")["message"]
    assert "cannot be deleted" in error_of(deleted, 409, "conflict")["message"]
    assert described.json()["description"] == "Operators"
    assert described.json()["name"] == "admin"


async def test_grant_and_revoke_are_idempotent_and_check_their_input(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    url = f"{RBAC}/roles/{await role_id(resources, 'viewer')}/permissions"

    await client.put(f"{url}/articles:write", headers=admin)
    granted_twice = await client.put(f"{url}/articles:write", headers=admin)
    await client.delete(f"{url}/articles:write", headers=admin)
    revoked_twice = await client.delete(f"{url}/articles:write", headers=admin)

    assert "articles:write" in granted_twice.json()["permissions"]
    viewer = next(role.permissions for role in DEFAULT_ROLES if role.name == "viewer")
    assert revoked_twice.json()["permissions"] == sorted(viewer)
    unknown = await client.put(f"{url}/articles:review", headers=admin)
    assert "Unknown permission" in error_of(unknown, 404, "not_found")["message"]
    missing_role = await client.put(
        f"{RBAC}/roles/{MISSING}/permissions/articles:read", headers=admin
    )
    error_of(missing_role, 404, "not_found")


async def test_users_are_listed_with_their_roles_without_a_query_per_user(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    await client.get(f"{API}/users/me", headers=admin)  # the admin's snapshot is cached
    with recorded_queries(resources.engine) as one_user:
        first = await client.get(f"{API}/users", headers=admin, params={"limit": 100})
    for _ in range(4):
        await register_user(client)
    with recorded_queries(resources.engine) as five_users:
        listed = await client.get(f"{API}/users", headers=admin, params={"limit": 100})

    assert first.json()["total"] == 1
    body = listed.json()
    assert (body["total"], body["limit"], body["offset"]) == (5, 100, 0)
    assert sorted(role["name"] for user in body["items"] for role in user["roles"]) == [
        "admin",
        *["author"] * 4,
    ]
    assert len(five_users) == len(one_user)
    page = await client.get(f"{API}/users", headers=admin, params={"limit": 2, "offset": 4})
    assert len(page.json()["items"]) == 1
    error_of(await client.get(f"{API}/users", headers=admin, params={"limit": 101}), 422)


async def test_assigning_roles_checks_users_and_roles(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    user = await register_user(client)
    editor = await role_id(resources, "editor")
    viewer = await role_id(resources, "viewer")

    added = await client.put(f"{API}/users/{user['id']}/roles/{editor}", headers=admin)
    assert sorted(role["name"] for role in added.json()["roles"]) == ["author", "editor"]
    unknown_user = await client.put(f"{API}/users/{MISSING}/roles/{editor}", headers=admin)
    unknown_role = await client.put(f"{API}/users/{user['id']}/roles/{MISSING}", headers=admin)
    not_held = await client.delete(f"{API}/users/{user['id']}/roles/{viewer}", headers=admin)

    assert "User not found" in error_of(unknown_user, 404, "not_found")["message"]
    assert "Role not found" in error_of(unknown_role, 404, "not_found")["message"]
    assert "does not hold" in error_of(not_held, 404, "not_found")["message"]
    fetched = await client.get(f"{API}/users/{user['id']}", headers=admin)
    assert sorted(role["name"] for role in fetched.json()["roles"]) == ["author", "editor"]


async def test_deactivation_locks_a_user_out_at_once(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    user = await register_user(client)
    headers = await login(client, user["email"])

    deactivated = await client.post(f"{API}/users/{user['id']}/deactivate", headers=admin)

    assert deactivated.json()["is_active"] is False
    error_of(await client.get(f"{API}/users/me", headers=headers), 401, "unauthorized")
    activated = await client.post(f"{API}/users/{user['id']}/activate", headers=admin)
    assert activated.json()["is_active"] is True
    # Issue #17 (8): deactivation ended the sessions; reactivating does not revive them.
    error_of(await client.get(f"{API}/users/me", headers=headers), 401, "unauthorized")
    fresh = await login(client, user["email"])
    assert (await client.get(f"{API}/users/me", headers=fresh)).status_code == 200
    unknown = await client.post(f"{API}/users/{uuid.uuid4()}/deactivate", headers=admin)
    error_of(unknown, 404, "not_found")
