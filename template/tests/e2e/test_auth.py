import httpx

from tests.helpers import (
    API,
    DEFAULT_PASSWORD,
    error_of,
    login,
    register_user,
    unique_email,
)


async def test_register_returns_the_user_without_password(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        f"{API}/auth/register",
        json={
            "email": "New.User@Example.com",
            "password": DEFAULT_PASSWORD,
            "full_name": "New",
        },
    )

    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "new.user@example.com"
    assert body["full_name"] == "New"
    assert body["is_active"] is True
    assert body["is_verified"] is False
    assert "password" not in body
    assert "hashed_password" not in body
    assert DEFAULT_PASSWORD not in response.text


async def test_duplicate_registration_is_a_conflict(client: httpx.AsyncClient) -> None:
    user = await register_user(client)

    response = await client.post(
        f"{API}/auth/register",
        json={"email": user["email"].upper(), "password": DEFAULT_PASSWORD},
    )

    error = error_of(response, 409, "conflict")
    assert error["details"] is None


async def test_register_refuses_a_short_password(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/auth/register", json={"email": unique_email(), "password": "short"}
    )

    error = error_of(response, 422, "request_validation_error")
    assert error["details"][0]["loc"] == ["body", "password"]


async def test_wrong_password_and_unknown_email_get_the_same_401(
    client: httpx.AsyncClient,
) -> None:
    user = await register_user(client)

    wrong_password = await client.post(
        f"{API}/auth/login",
        json={"email": user["email"], "password": "not-the-password"},
    )
    unknown_email = await client.post(
        f"{API}/auth/login",
        json={"email": unique_email("ghost"), "password": DEFAULT_PASSWORD},
    )

    first = error_of(wrong_password, 401, "unauthorized")
    second = error_of(unknown_email, 401, "unauthorized")
    assert first.pop("request_id") != second.pop("request_id")
    assert first == second
    assert wrong_password.headers["WWW-Authenticate"] == "Bearer"
    assert unknown_email.headers["WWW-Authenticate"] == "Bearer"


async def test_login_ignores_email_case(client: httpx.AsyncClient) -> None:
    await register_user(client, email="casey@example.com")

    headers = await login(client, "CASEY@Example.com")

    me = await client.get(f"{API}/users/me", headers=headers)
    assert me.json()["email"] == "casey@example.com"
