"""`GET /users` (administrators): filters, sort orders and fields on the shared machinery."""

from typing import Any

import httpx
import pytest

from app.core.resources import Resources
from tests.helpers import API, error_of, login_as, register_user, set_roles

USERS = f"{API}/users"


@pytest.fixture
async def admin(client: httpx.AsyncClient, resources: Resources) -> dict[str, str]:
    return await login_as(client, resources, "admin")


async def _emails(client: httpx.AsyncClient, admin: dict[str, str], **params: Any) -> list[str]:
    response = await client.get(USERS, headers=admin, params={"fields": "email", **params})
    assert response.status_code == 200, response.text
    return [item["email"] for item in response.json()["items"]]


async def test_users_filter_by_role_and_sort_by_email(
    client: httpx.AsyncClient, resources: Resources, admin: dict[str, str]
) -> None:
    zoe = await register_user(client, email="zoe@example.com")
    amy = await register_user(client, email="amy@example.com")
    await set_roles(resources, zoe["id"], "editor")

    editors = await _emails(client, admin, role="editor")
    authors = await _emails(client, admin, role="author", sort="email")
    descending = await _emails(client, admin, role="author", sort="-email")

    assert editors == ["zoe@example.com"]
    assert authors == [amy["email"]]
    assert descending == authors[::-1]


async def test_roles_are_a_selectable_field(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await client.get(USERS, headers=admin, params={"fields": "email,roles"})

    [item] = response.json()["items"]
    assert set(item) == {"email", "roles"}
    assert [role["name"] for role in item["roles"]] == ["admin"]


async def test_unknown_user_filters_and_orders_are_refused(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    for params in ({"sort": "hashed_password"}, {"is_active": "maybe"}, {"password": "x"}):
        error_of(await client.get(USERS, headers=admin, params=params), 422)
