"""Email verification and password reset: single-use links by email, no account enumeration."""

import asyncio
import re
import uuid

import httpx
import pytest

from app.core.resources import Resources
from app.services import one_time_tokens
from app.services.one_time_tokens import TokenPurpose
from tests.helpers import (
    API,
    DEFAULT_PASSWORD,
    RecordedEmail,
    error_of,
    login_session,
    register_user,
    unique_email,
)

NEW_PASSWORD = "a completely new passphrase"


def token_in(message: RecordedEmail) -> str:
    match = re.search(r"token=([A-Za-z0-9_-]+)", message.text or message.html)
    assert match, "the email carries no link with a token"
    return match.group(1)


async def _request(client: httpx.AsyncClient, flow: str, email: str) -> httpx.Response:
    return await client.post(f"{API}/auth/{flow}/request", json={"email": email})


@pytest.mark.parametrize("flow", ["verify-email", "password-reset"])
async def test_requests_answer_the_same_for_unknown_addresses(
    client: httpx.AsyncClient, outbox: list[RecordedEmail], flow: str
) -> None:
    user = await register_user(client)
    outbox.clear()  # the welcome email

    known = await _request(client, flow, user["email"])
    unknown = await _request(client, flow, unique_email("nobody"))

    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert [message.recipients for message in outbox] == [[user["email"]]]


async def test_verification_link_verifies_once(
    client: httpx.AsyncClient, outbox: list[RecordedEmail]
) -> None:
    user = await register_user(client)
    outbox.clear()
    await _request(client, "verify-email", user["email"])
    [message] = outbox
    token = token_in(message)

    confirmed = await client.post(f"{API}/auth/verify-email/confirm", json={"token": token})
    again = await client.post(f"{API}/auth/verify-email/confirm", json={"token": token})

    assert confirmed.status_code == 204
    error_of(again, 400, "invalid_token")
    session = await login_session(client, user["email"])
    me = await client.get(f"{API}/users/me", headers=session.headers)
    assert me.json()["is_verified"] is True
    outbox.clear()
    assert (await _request(client, "verify-email", user["email"])).status_code == 202
    assert outbox == []  # nothing left to verify


async def test_password_reset_token_is_single_use_and_ends_sessions(
    client: httpx.AsyncClient, outbox: list[RecordedEmail]
) -> None:
    user = await register_user(client)
    session = await login_session(client, user["email"])
    outbox.clear()
    await _request(client, "password-reset", user["email"])
    token = token_in(outbox[0])
    body = {"token": token, "new_password": NEW_PASSWORD}

    reset = await client.post(f"{API}/auth/password-reset/confirm", json=body)
    replay = await client.post(f"{API}/auth/password-reset/confirm", json=body)

    assert reset.status_code == 204
    error_of(replay, 400, "invalid_token")
    error_of(await client.get(f"{API}/users/me", headers=session.headers), 401)
    old = await client.post(
        f"{API}/auth/login", json={"email": user["email"], "password": DEFAULT_PASSWORD}
    )
    error_of(old, 401)
    assert (await login_session(client, user["email"], NEW_PASSWORD)).session_id


async def test_expired_or_unknown_tokens_are_refused(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    user = await register_user(client)
    expiring = await one_time_tokens.issue(
        resources.cache, TokenPurpose.RESET_PASSWORD, uuid.UUID(user["id"]), ttl_seconds=1
    )
    await asyncio.sleep(1.2)

    for token in (expiring, "x" * 43):
        response = await client.post(
            f"{API}/auth/password-reset/confirm",
            json={"token": token, "new_password": NEW_PASSWORD},
        )
        error_of(response, 400, "invalid_token")


async def test_a_token_for_one_purpose_does_not_work_for_the_other(
    client: httpx.AsyncClient, outbox: list[RecordedEmail]
) -> None:
    user = await register_user(client)
    outbox.clear()
    await _request(client, "verify-email", user["email"])

    response = await client.post(
        f"{API}/auth/password-reset/confirm",
        json={"token": token_in(outbox[0]), "new_password": NEW_PASSWORD},
    )

    error_of(response, 400, "invalid_token")


async def test_link_requests_are_rate_limited(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources.settings, "email_link_rate_limit", "2/minute")
    email = unique_email("flood")

    statuses = [(await _request(client, "password-reset", email)).status_code for _ in range(3)]

    assert statuses == [202, 202, 429]
