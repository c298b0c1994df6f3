import asyncio
import contextlib
from typing import Any

import httpx
import pytest

from app.services.user_service import UserService
from tests.helpers import (
    API,
    CHALLENGE,
    DEFAULT_PASSWORD,
    OTHER_PASSWORD,
    RecordedEmail,
    error_of,
    login,
    register_user,
    unique_email,
)


async def test_register_creates_the_user_without_echoing_the_password(
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

    assert response.status_code == 202
    assert DEFAULT_PASSWORD not in response.text
    headers = await login(client, "new.user@example.com")
    me = await client.get(f"{API}/users/me", headers=headers)
    body = me.json()
    assert body["email"] == "new.user@example.com"
    assert body["full_name"] == "New"
    assert body["is_active"] is True
    assert body["is_verified"] is False
    assert "password" not in body
    assert "hashed_password" not in body


async def test_registering_a_taken_address_answers_the_same_and_tells_its_owner(
    client: httpx.AsyncClient, outbox: list[RecordedEmail]
) -> None:
    """Issue #17 (9): no 409 telling who has an account; the owner gets an email."""
    user = await register_user(client)
    new = await client.post(
        f"{API}/auth/register", json={"email": unique_email(), "password": DEFAULT_PASSWORD}
    )
    outbox.clear()

    taken = await client.post(
        f"{API}/auth/register",
        json={"email": user["email"].upper(), "password": OTHER_PASSWORD},
    )

    assert (taken.status_code, taken.json()) == (new.status_code, new.json())
    [notice] = outbox
    assert notice.recipients == [user["email"]]
    assert "already have an account" in notice.html
    # The owner's password is untouched.
    assert await login(client, user["email"])


async def test_two_registrations_of_one_address_at_once_answer_the_same(
    client: httpx.AsyncClient, outbox: list[RecordedEmail], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both find the address free, then both insert it (they meet before the insert); the
    unique email turns the second into the "already registered" path: the same answer,
    and the address gets a welcome and an account-exists notice."""
    meeting = asyncio.Barrier(2)
    insert = UserService.register

    async def meet_then_insert(*args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(TimeoutError, asyncio.BrokenBarrierError):
            await asyncio.wait_for(meeting.wait(), 1.0)
        return await insert(*args, **kwargs)

    monkeypatch.setattr(UserService, "register", meet_then_insert)
    email = unique_email("twice")
    payload = {"email": email, "password": DEFAULT_PASSWORD}

    answers = await asyncio.gather(
        *(client.post(f"{API}/auth/register", json=payload) for _ in range(2))
    )

    assert [answer.status_code for answer in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()
    assert [message.recipients for message in outbox] == [[email], [email]]
    assert any("already have an account" in message.html for message in outbox)


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
    assert wrong_password.headers["WWW-Authenticate"] == CHALLENGE
    assert unknown_email.headers["WWW-Authenticate"] == CHALLENGE


async def test_login_ignores_email_case(client: httpx.AsyncClient) -> None:
    await register_user(client, email="casey@example.com")

    headers = await login(client, "CASEY@Example.com")

    me = await client.get(f"{API}/users/me", headers=headers)
    assert me.json()["email"] == "casey@example.com"
