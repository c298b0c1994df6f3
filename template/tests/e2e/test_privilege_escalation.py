"""No grant beyond the granter's own permissions (issue #17, finding 3).

A delegated administrator holds `users:admin` or `roles:admin` alone. Neither may hand
out, to anyone (themselves included), a role or a permission they do not hold, nor take
one away, nor lock out a user who holds more than they do. Editors administer nothing:
they moderate articles, and `articles:moderate` never reaches `articles:admin`.
"""

import httpx
import pytest
from sqlalchemy import select

from app.core.rbac import DEFAULT_ROLES
from app.core.resources import Resources
from app.models.user import User
from tests.helpers import API, error_of, login, register_user, role_id, set_roles, unique_email

RBAC = f"{API}/rbac"


async def _delegate(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str], *permissions: str
) -> tuple[dict[str, str], str, str]:
    """A user whose only role grants exactly `permissions`: headers, user id, role id."""
    name = "delegate-" + "-".join(p.replace(":", "-") for p in permissions)
    created = await client.post(
        f"{RBAC}/roles", headers=admin, json={"name": name, "permissions": list(permissions)}
    )
    assert created.status_code == 201, created.text
    user = await register_user(client)
    await set_roles(resources, user["id"], name)
    return await login(client, user["email"]), user["id"], created.json()["id"]


@pytest.fixture
async def admin(client: httpx.AsyncClient, resources: Resources) -> dict[str, str]:
    user = await register_user(client)
    await set_roles(resources, user["id"], "admin")
    return await login(client, user["email"])


async def test_a_users_admin_cannot_give_itself_the_admin_role(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    headers, user_id, own_role = await _delegate(client, resources, admin, "users:admin")
    admin_role = await role_id(resources, "admin")

    escalated = await client.put(f"{API}/users/{user_id}/roles/{admin_role}", headers=headers)

    error = error_of(escalated, 403, "forbidden")
    assert "roles:admin" in error["details"]["missing_permissions"]
    me = (await client.get(f"{API}/users/me", headers=headers)).json()
    assert "admin" not in me["roles"]
    # A role within its own permissions it may give.
    other = await register_user(client)
    given = await client.put(f"{API}/users/{other['id']}/roles/{own_role}", headers=headers)
    assert given.status_code == 200, given.text


@pytest.mark.parametrize("permission", ["users:admin", "articles:admin", "files:admin"])
async def test_a_roles_admin_cannot_grant_itself_what_it_lacks(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str], permission: str
) -> None:
    headers, _, own_role = await _delegate(client, resources, admin, "roles:admin")

    granted = await client.put(f"{RBAC}/roles/{own_role}/permissions/{permission}", headers=headers)

    error_of(granted, 403, "forbidden")
    me = (await client.get(f"{API}/users/me", headers=headers)).json()
    assert permission not in me["permissions"]
    # What `roles:admin` covers it may still grant.
    covered = await client.put(f"{RBAC}/roles/{own_role}/permissions/roles:read", headers=headers)
    assert covered.status_code == 200, covered.text


async def test_a_roles_admin_cannot_create_a_role_beyond_itself(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    headers, _, _ = await _delegate(client, resources, admin, "roles:admin")

    created = await client.post(
        f"{RBAC}/roles", headers=headers, json={"name": "mine", "permissions": ["users:admin"]}
    )

    error_of(created, 403, "forbidden")


async def test_a_delegated_admin_cannot_demote_or_lock_out_an_administrator(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    headers, _, _ = await _delegate(client, resources, admin, "users:admin")
    target = await register_user(client)
    await set_roles(resources, target["id"], "admin")
    admin_role = await role_id(resources, "admin")

    demoted = await client.delete(f"{API}/users/{target['id']}/roles/{admin_role}", headers=headers)
    deactivated = await client.post(f"{API}/users/{target['id']}/deactivate", headers=headers)
    # Another administrator remains (the fixture's), so only the rank can refuse this.
    erased = await client.delete(f"{API}/users/{target['id']}", headers=headers)

    error_of(demoted, 403, "forbidden")
    error_of(deactivated, 403, "forbidden")
    assert "roles:admin" in error_of(erased, 403, "forbidden")["details"]["missing_permissions"]
    kept = (await client.get(f"{API}/users/{target['id']}", headers=admin)).json()
    assert kept["is_active"] is True
    assert "admin" in [role["name"] for role in kept["roles"]]


async def test_a_roles_admin_cannot_edit_a_role_it_does_not_dominate(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    # Changing a role's permissions changes every holder of the role: a delegated
    # `roles:admin` holder must not strip the administrators of `roles:admin` (it holds
    # that very permission, but not the rest of the admin role), nor touch the editor
    # role (articles:moderate), nor rename either.
    headers, _, _ = await _delegate(client, resources, admin, "roles:admin")
    admin_role = await role_id(resources, "admin")
    editor_role = await role_id(resources, "editor")

    revoked = await client.delete(
        f"{RBAC}/roles/{admin_role}/permissions/roles:admin", headers=headers
    )
    granted = await client.put(
        f"{RBAC}/roles/{editor_role}/permissions/roles:read", headers=headers
    )
    renamed = await client.patch(
        f"{RBAC}/roles/{editor_role}", headers=headers, json={"description": "mine now"}
    )

    assert "users:admin" in error_of(revoked, 403, "forbidden")["details"]["missing_permissions"]
    missing = error_of(granted, 403, "forbidden")["details"]["missing_permissions"]
    assert "articles:moderate" in missing
    error_of(renamed, 403, "forbidden")
    role = (await client.get(f"{RBAC}/roles/{admin_role}", headers=admin)).json()
    assert "roles:admin" in role["permissions"]
    me = (await client.get(f"{API}/users/me", headers=admin)).json()
    assert "roles:admin" in me["permissions"]
    # The super-administrator still administers roles.
    editor = await client.put(f"{RBAC}/roles/{editor_role}/permissions/roles:read", headers=admin)
    assert editor.status_code == 200, editor.text


async def test_a_roles_admin_cannot_delete_a_role_it_does_not_dominate(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    # Deleting a role takes its permissions from every holder, as revoking them would.
    headers, _, _ = await _delegate(client, resources, admin, "roles:admin")
    deputies = await client.post(
        f"{RBAC}/roles", headers=admin, json={"name": "deputies", "permissions": ["users:admin"]}
    )
    assert deputies.status_code == 201, deputies.text
    holder = await register_user(client)
    await set_roles(resources, holder["id"], "deputies")

    deleted = await client.delete(f"{RBAC}/roles/{deputies.json()['id']}", headers=headers)

    assert "users:admin" in error_of(deleted, 403, "forbidden")["details"]["missing_permissions"]
    kept = await client.get(f"{RBAC}/roles/{deputies.json()['id']}", headers=admin)
    assert kept.status_code == 200
    assert kept.json()["permissions"] == ["users:admin"]


async def test_an_editor_administers_no_access(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    editor = await register_user(client)
    await set_roles(resources, editor["id"], "editor")
    headers = await login(client, editor["email"])
    editor_role, admin_role = await role_id(resources, "editor"), await role_id(resources, "admin")
    other = await register_user(client)

    attempts = [
        await client.put(f"{RBAC}/roles/{editor_role}/permissions/articles:admin", headers=headers),
        await client.post(f"{RBAC}/roles", headers=headers, json={"name": "mine"}),
        await client.put(f"{API}/users/{editor['id']}/roles/{admin_role}", headers=headers),
        await client.put(f"{API}/users/{other['id']}/roles/{editor_role}", headers=headers),
        await client.post(f"{API}/users/{other['id']}/deactivate", headers=headers),
    ]

    for attempt in attempts:
        error_of(attempt, 403, "forbidden")
    me = (await client.get(f"{API}/users/me", headers=headers)).json()
    assert me["roles"] == ["editor"]
    assert [name for name in me["permissions"] if name.endswith(":admin")] == []


async def test_a_moderator_grants_what_moderate_implies_never_the_feature_admin(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    # Grants dominate: a role administrator that moderates articles hands out article
    # actions and `articles:moderate` itself, but not `articles:admin` (which it does not
    # hold and `moderate` does not imply), nor another feature's `moderate`.
    headers, _, own_role = await _delegate(
        client, resources, admin, "roles:admin", "articles:moderate"
    )

    created = await client.post(
        f"{RBAC}/roles",
        headers=headers,
        json={"name": "copy-desk", "permissions": ["articles:publish", "articles:moderate"]},
    )
    widened = await client.put(
        f"{RBAC}/roles/{own_role}/permissions/articles:admin", headers=headers
    )
    files = await client.put(f"{RBAC}/roles/{own_role}/permissions/files:moderate", headers=headers)

    assert created.status_code == 201, created.text
    missing = error_of(widened, 403, "forbidden")["details"]["missing_permissions"]
    assert missing == ["articles:admin"]
    assert error_of(files, 403, "forbidden")["details"]["missing_permissions"] == ["files:moderate"]
    me = (await client.get(f"{API}/users/me", headers=headers)).json()
    assert sorted(me["permissions"]) == ["articles:moderate", "roles:admin"]


async def test_creating_a_user_grants_the_default_role_only_within_the_creators_own(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    """POST /users hands out DEFAULT_ROLE: the same grant check as assigning it (issue
    #17, third review, finding 6)."""
    headers, _, _ = await _delegate(client, resources, admin, "users:admin")
    email = unique_email()
    payload = {"email": email, "password": "correct horse battery staple"}

    refused = await client.post(f"{API}/users", headers=headers, json=payload)

    error = error_of(refused, 403, "forbidden")
    assert "articles:write" in error["details"]["missing_permissions"]
    async with resources.session_factory() as db:
        assert await db.scalar(select(User).where(User.email == email)) is None
    # Holding every permission of the default role, it may.
    default_role = resources.settings.default_role
    (role,) = (role for role in DEFAULT_ROLES if role.name == default_role)
    permissions = ["users:admin", *sorted(role.permissions)]
    made = await client.post(
        f"{RBAC}/roles", headers=admin, json={"name": "user-creator", "permissions": permissions}
    )
    assert made.status_code == 201, made.text
    creator = await register_user(client)
    await set_roles(resources, creator["id"], "user-creator")
    allowed = await login(client, creator["email"])
    created = await client.post(f"{API}/users", headers=allowed, json=payload)
    assert created.status_code == 201, created.text
    assert [held["name"] for held in created.json()["roles"]] == [default_role]


async def test_the_admin_role_never_loses_a_permission_so_it_can_always_grant_it(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    """Revoking `articles:admin` from the `admin` role would leave its holders unable to
    grant it back (no grant beyond one's own): the revocation is refused, and the
    administrator can still grant the permission to any other role."""
    admin_role = await role_id(resources, "admin")
    editor_role = await role_id(resources, "editor")

    revoked = await client.delete(
        f"{RBAC}/roles/{admin_role}/permissions/articles:admin", headers=admin
    )
    regranted = await client.put(
        f"{RBAC}/roles/{editor_role}/permissions/articles:admin", headers=admin
    )

    assert "every permission" in error_of(revoked, 409, "conflict")["message"]
    role = (await client.get(f"{RBAC}/roles/{admin_role}", headers=admin)).json()
    [admin_definition] = [role for role in DEFAULT_ROLES if role.name == "admin"]
    assert set(role["permissions"]) == admin_definition.permissions
    assert regranted.status_code == 200, regranted.text
    assert "articles:admin" in regranted.json()["permissions"]
