"""Access stays administrable: the last active holder of `users:admin` or `roles:admin`
cannot be removed, demoted or deactivated, and the permission cannot be revoked from
the last role that carries it to an active user."""

import httpx
import pytest

from app.core.resources import Resources
from tests.helpers import API, error_of, login_as, role_id

RBAC = f"{API}/rbac"


@pytest.fixture
async def admin(client: httpx.AsyncClient, resources: Resources) -> dict[str, str]:
    return await login_as(client, resources, "admin")


async def _me(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    user_id: str = (await client.get(f"{API}/users/me", headers=headers)).json()["id"]
    return user_id


async def test_the_last_administrator_cannot_drop_their_role_or_be_deactivated(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    me = await _me(client, admin)
    admin_role = await role_id(resources, "admin")

    demoted = await client.delete(f"{API}/users/{me}/roles/{admin_role}", headers=admin)
    deactivated = await client.post(f"{API}/users/{me}/deactivate", headers=admin)

    assert "users:admin" in error_of(demoted, 409, "conflict")["message"]
    error_of(deactivated, 409, "conflict")
    still = await client.get(f"{API}/users/me", headers=admin)
    assert still.status_code == 200
    assert still.json()["roles"] == ["admin"]


async def test_the_permission_cannot_be_revoked_from_its_last_role(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    """The only administrator holds `users:admin` and `roles:admin` through a role of
    their own (the `admin` role, which never loses one, has no active holder left)."""
    created = await client.post(
        f"{RBAC}/roles",
        headers=admin,
        json={"name": "deputies", "permissions": ["users:admin", "roles:admin"]},
    )
    assert created.status_code == 201, created.text
    deputies = created.json()["id"]
    me = await _me(client, admin)
    given = await client.put(f"{API}/users/{me}/roles/{deputies}", headers=admin)
    admin_role = await role_id(resources, "admin")
    dropped = await client.delete(f"{API}/users/{me}/roles/{admin_role}", headers=admin)
    assert (given.status_code, dropped.status_code) == (200, 200), dropped.text

    revoked = await client.delete(f"{RBAC}/roles/{deputies}/permissions/roles:admin", headers=admin)

    assert "roles:admin" in error_of(revoked, 409, "conflict")["message"]
    role = (await client.get(f"{RBAC}/roles/{deputies}", headers=admin)).json()
    assert "roles:admin" in role["permissions"]


async def test_with_a_second_administrator_the_first_may_step_down(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    second = await login_as(client, resources, "admin")
    admin_role = await role_id(resources, "admin")

    demoted = await client.delete(
        f"{API}/users/{await _me(client, admin)}/roles/{admin_role}", headers=second
    )
    last = await client.post(f"{API}/users/{await _me(client, second)}/deactivate", headers=second)

    assert demoted.status_code == 200
    assert demoted.json()["roles"] == []
    error_of(last, 409, "conflict")


async def test_a_custom_role_carrying_the_permission_counts(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    created = await client.post(
        f"{RBAC}/roles",
        headers=admin,
        json={"name": "gatekeeper", "permissions": ["users:admin", "roles:admin"]},
    )
    assert created.status_code == 201, created.text
    gatekeeper = created.json()["id"]
    me = await _me(client, admin)
    await client.put(f"{API}/users/{me}/roles/{gatekeeper}", headers=admin)

    # The administrator may now leave the admin role: the custom role still carries it.
    left = await client.delete(
        f"{API}/users/{me}/roles/{await role_id(resources, 'admin')}", headers=admin
    )
    deleted = await client.delete(f"{RBAC}/roles/{gatekeeper}", headers=admin)

    assert left.status_code == 200, left.text
    # ...but then the custom role is the last carrier of users:admin.
    error_of(deleted, 409, "conflict")
