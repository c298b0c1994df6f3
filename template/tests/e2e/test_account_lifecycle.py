"""Account lifecycle: erasing your own account, administrators creating and deleting users."""

import uuid
from collections.abc import Callable

import httpx
from sqlalchemy import func, select

from app.core.resources import Resources
from app.models import Article, AuthSession, File, User
from app.models.outbox import OutboxMessage
from tests.helpers import (
    API,
    DEFAULT_PASSWORD,
    create_article,
    error_of,
    login,
    login_as,
    login_session,
    register_user,
    set_roles,
    unique_email,
    upload_file,
)

USER_COLUMNS = {
    "users": User.id,
    "articles": Article.author_id,
    "files": File.owner_id,
    "auth_sessions": AuthSession.user_id,
}


async def _rows(resources: Resources, table: str, user_id: str) -> int:
    """How many rows of `table` name the user."""
    column = USER_COLUMNS[table]
    async with resources.session_factory() as db:
        count = await db.scalar(select(func.count()).where(column == uuid.UUID(user_id)))
    return int(count or 0)


async def _delete_me(client: httpx.AsyncClient, headers: dict[str, str], password: str) -> int:
    response = await client.request(
        "DELETE", f"{API}/users/me", headers=headers, json={"password": password}
    )
    return response.status_code


async def test_erasing_your_account_removes_everything_personal(
    client: httpx.AsyncClient, resources: Resources, stored_keys: Callable[[str], set[str]]
) -> None:
    user = await register_user(client)
    session = await login_session(client, user["email"])
    other_device = await login_session(client, user["email"])
    await create_article(client, session.headers, publish=True)
    for name in ("a.txt", "b.txt"):
        assert (await upload_file(client, session.headers, filename=name)).status_code == 201
    owner_prefix = uuid.UUID(user["id"]).hex
    assert len(stored_keys(owner_prefix)) == 2

    assert await _delete_me(client, session.headers, DEFAULT_PASSWORD) == 204

    for table in USER_COLUMNS:
        assert await _rows(resources, table, user["id"]) == 0, table
    assert stored_keys(owner_prefix) == set(), "the stored files outlived the account"
    for device in (session, other_device):
        error_of(await client.get(f"{API}/users/me", headers=device.headers), 401)
    login_again = await client.post(
        f"{API}/auth/login", json={"email": user["email"], "password": DEFAULT_PASSWORD}
    )
    error_of(login_again, 401)
    reader = await login(client, (await register_user(client))["email"])
    listed = await client.get(f"{API}/articles", headers=reader)
    assert listed.json()["items"] == [], listed.text


async def test_erasing_needs_the_password(client: httpx.AsyncClient, resources: Resources) -> None:
    user = await register_user(client)
    headers = await login(client, user["email"])

    response = await client.request(
        "DELETE", f"{API}/users/me", headers=headers, json={"password": "not-mine"}
    )

    error_of(response, 400, "incorrect_password")
    assert await _rows(resources, "users", user["id"]) == 1


async def test_the_last_administrator_cannot_erase_itself(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    user = await register_user(client)
    await set_roles(resources, user["id"], "admin")
    headers = await login(client, user["email"])

    response = await client.request(
        "DELETE", f"{API}/users/me", headers=headers, json={"password": DEFAULT_PASSWORD}
    )

    error_of(response, 409, "conflict")
    assert await _rows(resources, "users", user["id"]) == 1


async def test_erasing_an_account_erases_the_mail_to_it(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """Waiting or sent, a message holds the address (and a waiting one a link): it goes
    with the account (GDPR art. 17)."""
    user = await register_user(client)  # a welcome message to the address
    headers = await login(client, user["email"])

    async def mail_to_the_address() -> int:
        async with resources.session_factory() as db:
            query = select(func.count()).where(OutboxMessage.to_email == user["email"])
            return int(await db.scalar(query) or 0)

    assert await mail_to_the_address() >= 1
    response = await client.request(
        "DELETE", f"{API}/users/me", headers=headers, json={"password": DEFAULT_PASSWORD}
    )

    assert response.status_code == 204, response.text
    assert await mail_to_the_address() == 0


async def test_an_administrator_cannot_erase_itself_without_its_password(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """The administrators' route would skip the password `DELETE /users/me` asks for: a
    stolen access token must not be enough to erase the account it belongs to."""
    user = await register_user(client)
    await set_roles(resources, user["id"], "admin")
    await set_roles(resources, (await register_user(client))["id"], "admin")  # not the last
    headers = await login(client, user["email"])

    response = await client.delete(f"{API}/users/{user['id']}", headers=headers)

    error = error_of(response, 403, "forbidden")
    assert "DELETE /users/me" in error["message"]
    assert await _rows(resources, "users", user["id"]) == 1
    assert (await client.get(f"{API}/users/me", headers=headers)).status_code == 200


async def test_an_administrator_creates_and_deletes_users(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    admin = await login_as(client, resources, "admin")
    email = unique_email("created")

    weak = await client.post(
        f"{API}/users", headers=admin, json={"email": email, "password": "password"}
    )
    created = await client.post(
        f"{API}/users", headers=admin, json={"email": email, "password": DEFAULT_PASSWORD}
    )
    taken = await client.post(
        f"{API}/users", headers=admin, json={"email": email, "password": DEFAULT_PASSWORD}
    )

    error_of(weak, 422, "password_refused")
    assert created.status_code == 201, created.text
    assert created.json()["email"] == email
    error_of(taken, 409, "conflict")
    headers = await login(client, email)

    deleted = await client.delete(f"{API}/users/{created.json()['id']}", headers=admin)

    assert deleted.status_code == 204
    error_of(await client.get(f"{API}/users/me", headers=headers), 401)
    error_of(await client.delete(f"{API}/users/{created.json()['id']}", headers=admin), 404)


async def test_creating_and_deleting_users_needs_users_admin(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author = await login_as(client, resources, "author")
    victim = await register_user(client)

    created = await client.post(
        f"{API}/users", headers=author, json={"email": unique_email(), "password": DEFAULT_PASSWORD}
    )
    deleted = await client.delete(f"{API}/users/{victim['id']}", headers=author)

    error_of(created, 403, "forbidden")
    error_of(deleted, 403, "forbidden")
    assert await _rows(resources, "users", victim["id"]) == 1
