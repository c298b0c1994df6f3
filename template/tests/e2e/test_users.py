import uuid

import httpx
import pytest
from sqlalchemy import update

from app.core.resources import Resources
from app.models import User
from app.services.user_service import user_service
from tests.helpers import API, CHALLENGE, error_of, login, register_user


async def test_me_returns_the_authenticated_user(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await client.get(f"{API}/users/me", headers=auth_headers)

    assert response.status_code == 200
    assert response.json()["email"].startswith("author-")
    assert "hashed_password" not in response.json()


async def test_me_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/users/me")

    error_of(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == CHALLENGE


@pytest.mark.parametrize(
    "authorization", ["Bearer garbage", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer"]
)
async def test_me_with_an_invalid_token_is_401(
    client: httpx.AsyncClient, authorization: str
) -> None:
    response = await client.get(f"{API}/users/me", headers={"Authorization": authorization})

    error_of(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == CHALLENGE


async def test_token_of_a_deactivated_user_is_refused(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    user = await register_user(client)
    headers = await login(client, user["email"])
    async with resources.session_factory() as db:
        await db.execute(update(User).where(User.email == user["email"]).values(is_active=False))
        await db.commit()
    # What every write through the service does: the next request reads the user again.
    await user_service.forget_snapshot(resources.cache, uuid.UUID(user["id"]))

    response = await client.get(f"{API}/users/me", headers=headers)

    error_of(response, 401, "unauthorized")


async def test_update_me_changes_the_full_name(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await client.patch(
        f"{API}/users/me", headers=auth_headers, json={"full_name": "Renamed"}
    )

    assert response.status_code == 200
    assert response.json()["full_name"] == "Renamed"
    me = await client.get(f"{API}/users/me", headers=auth_headers)
    assert me.json()["full_name"] == "Renamed"


@pytest.mark.parametrize(
    "payload",
    [
        {"is_active": False},
        {"email": "someone.else@example.com"},
        {"is_verified": True},
        {"roles": ["admin"]},
        {"permissions": ["roles:admin"]},
        {"full_name": "Me", "roles": [{"name": "admin"}]},
    ],
)
async def test_update_me_refuses_protected_fields(
    client: httpx.AsyncClient, auth_headers: dict[str, str], payload: dict[str, object]
) -> None:
    response = await client.patch(f"{API}/users/me", headers=auth_headers, json=payload)

    error = error_of(response, 422, "request_validation_error")
    assert error["details"][0]["type"] == "extra_forbidden"
    me = await client.get(f"{API}/users/me", headers=auth_headers)
    assert me.json()["is_active"] is True
    assert me.json()["is_verified"] is False
    assert me.json()["email"].startswith("author-")
    assert me.json()["full_name"] is None
    assert me.json()["roles"] == ["author"]
    assert "roles:admin" not in me.json()["permissions"]
