"""Registering sends a welcome email in the background; a delivery failure never fails it."""

import logging
import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from app.email.base import EmailProvider
from tests.helpers import (
    API,
    DEFAULT_PASSWORD,
    RecordedEmail,
    logged_events,
    login,
    unique_email,
)
from tests.jobs import jobs_sending_through


@pytest.fixture
def broken_email(app: FastAPI, unreachable_email_provider: EmailProvider) -> Iterator[None]:
    with jobs_sending_through(app, unreachable_email_provider):
        yield


async def test_registering_sends_a_welcome_email_with_a_verification_link(
    client: httpx.AsyncClient, outbox: list[RecordedEmail]
) -> None:
    email = unique_email("welcome")
    payload = {"email": email, "password": DEFAULT_PASSWORD, "full_name": "Ada <b>L</b>"}

    response = await client.post(f"{API}/auth/register", json=payload)

    assert response.status_code == 202
    [message] = outbox
    assert message.recipients == [email]
    assert "/verify-email?token=" in message.html
    assert message.text is not None
    assert "/verify-email?token=" in message.text
    # The link verifies the account it was sent for.
    token = re.search(r"token=([A-Za-z0-9_-]+)", message.text)
    assert token is not None
    confirmed = await client.post(
        f"{API}/auth/verify-email/confirm", json={"token": token.group(1)}
    )
    assert confirmed.status_code == 204, confirmed.text
    me = (await client.get(f"{API}/users/me", headers=await login(client, email))).json()
    assert me["is_verified"] is True


async def test_the_welcome_email_carries_no_text_the_registrant_chose(
    client: httpx.AsyncClient, outbox: list[RecordedEmail]
) -> None:
    """Issue #17 (14): the address is unverified; the service must not carry a
    stranger's words to it."""
    lure = "Security alert: your account is locked, confirm at http://evil.example"
    payload = {"email": unique_email("victim"), "password": DEFAULT_PASSWORD, "full_name": lure}

    await client.post(f"{API}/auth/register", json=payload)

    [message] = outbox
    for body in (message.html, message.text or "", message.subject):
        assert "evil.example" not in body
        assert "Security alert" not in body


@pytest.mark.usefixtures("broken_email")
async def test_a_failed_delivery_is_logged_and_registration_still_succeeds(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    payload = {"email": unique_email("unlucky"), "password": DEFAULT_PASSWORD}

    with caplog.at_level(logging.INFO):
        response = await client.post(
            f"{API}/auth/register", json=payload, headers={"X-Request-ID": "welcome-fail-1"}
        )

    assert response.status_code == 202, response.text
    [failure] = logged_events(caplog, "email_delivery_failed")
    assert failure["request_id"] == "welcome-fail-1"
    assert failure["template"] == "welcome"
    assert failure["level"] == "error"
    assert "127.0.0.1" in failure["error"], "the log should say where delivery failed"
