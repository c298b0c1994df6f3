"""Email verification and password reset: single-use links by email, no account enumeration."""

import asyncio
import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.resources import Resources
from app.models.user import User
from app.services import one_time_tokens
from app.services.one_time_tokens import TokenPurpose
from tests.helpers import (
    API,
    DEFAULT_PASSWORD,
    NEW_PASSWORD,
    OTHER_PASSWORD,
    RecordedEmail,
    client_from,
    error_of,
    login_as,
    login_session,
    register_user,
    seconds_to_live,
    unique_email,
)


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


async def test_two_confirmations_of_one_reset_link_at_once_let_one_through(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One after the other, the second confirmation also fails because the first one's
    password change ends every outstanding link; at once, both have checked the link
    before either changes the password, and only its single use (an atomic
    get-and-delete in the cache) lets exactly one through."""
    user = await register_user(client)
    token = await one_time_tokens.issue(
        resources.cache, TokenPurpose.RESET_PASSWORD, uuid.UUID(user["id"]), 600
    )
    both_checked = asyncio.Barrier(2)
    consume = one_time_tokens.consume

    async def meet_then_consume(*args: Any) -> uuid.UUID | None:
        await asyncio.wait_for(both_checked.wait(), timeout=10)
        return await consume(*args)

    monkeypatch.setattr(one_time_tokens, "consume", meet_then_consume)
    answers = await asyncio.gather(
        *(
            client.post(
                f"{API}/auth/password-reset/confirm",
                json={"token": token, "new_password": password},
            )
            for password in (NEW_PASSWORD, NEW_PASSWORD + "-other")
        )
    )

    assert sorted(response.status_code for response in answers) == [204, 400]
    error_of(next(r for r in answers if r.status_code == 400), 400, "invalid_token")


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


async def test_link_requests_are_limited_per_address_and_per_account_apart(
    app: FastAPI, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources.settings, "email_link_rate_limit", "2/minute")

    async def ask(ip: str, email: str) -> int:
        async with client_from(app, ip) as client:
            return (await _request(client, "password-reset", email)).status_code

    # One address asking for three accounts: its third request is refused, not another's.
    by_address = [await ask("203.0.113.20", unique_email()) for _ in range(3)]
    elsewhere = await ask("203.0.113.21", unique_email())
    # One account asked for from three addresses: the third is refused, not another account.
    target = unique_email("target")
    by_account = [await ask(f"203.0.113.{30 + n}", target) for n in range(3)]
    other_account = await ask("203.0.113.40", unique_email())

    assert (by_address, elsewhere) == ([202, 202, 429], 202)
    assert (by_account, other_account) == ([202, 202, 429], 202)


@pytest.mark.parametrize(
    ("flow", "purpose", "setting"),
    [
        ("verify-email", TokenPurpose.VERIFY_EMAIL, "email_verification_ttl_minutes"),
        ("password-reset", TokenPurpose.RESET_PASSWORD, "password_reset_ttl_minutes"),
    ],
)
async def test_a_link_lives_as_long_as_its_setting_says(
    client: httpx.AsyncClient,
    resources: Resources,
    outbox: list[RecordedEmail],
    flow: str,
    purpose: TokenPurpose,
    setting: str,
) -> None:
    user = await register_user(client)
    outbox.clear()
    await _request(client, flow, user["email"])
    token_key = one_time_tokens._key(purpose, one_time_tokens._digest(token_in(outbox[0])))

    lifetime = await seconds_to_live(resources.cache, token_key)

    minutes = getattr(resources.settings, setting)
    assert lifetime is not None
    assert minutes * 60 - 1.5 < lifetime <= minutes * 60


async def test_an_older_reset_link_dies_when_a_newer_one_is_sent(
    client: httpx.AsyncClient, outbox: list[RecordedEmail]
) -> None:
    """Issue #17 (5): links A then B; B sets the password, and A no longer works (nor
    would it have before B was used)."""
    user = await register_user(client)
    outbox.clear()
    await _request(client, "password-reset", user["email"])
    await _request(client, "password-reset", user["email"])
    first, second = (token_in(message) for message in outbox)

    early = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": first, "new_password": NEW_PASSWORD}
    )
    used = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": second, "new_password": NEW_PASSWORD}
    )
    late = await client.post(
        f"{API}/auth/password-reset/confirm",
        json={"token": first, "new_password": OTHER_PASSWORD},
    )

    error_of(early, 400, "invalid_token")
    assert used.status_code == 204, used.text
    error_of(late, 400, "invalid_token")


async def test_changing_the_password_ends_outstanding_reset_links(
    client: httpx.AsyncClient, outbox: list[RecordedEmail]
) -> None:
    user = await register_user(client)
    session = await login_session(client, user["email"])
    outbox.clear()
    await _request(client, "password-reset", user["email"])
    token = token_in(outbox[0])

    changed = await client.post(
        f"{API}/auth/password",
        headers=session.headers,
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )
    reset = await client.post(
        f"{API}/auth/password-reset/confirm",
        json={"token": token, "new_password": OTHER_PASSWORD},
    )

    assert changed.status_code == 204, changed.text
    error_of(reset, 400, "invalid_token")


async def test_a_refused_password_does_not_use_up_the_reset_link(
    client: httpx.AsyncClient, outbox: list[RecordedEmail]
) -> None:
    user = await register_user(client)
    outbox.clear()
    await _request(client, "password-reset", user["email"])
    token = token_in(outbox[0])

    weak = await client.post(
        f"{API}/auth/password-reset/confirm",
        json={"token": token, "new_password": user["email"]},  # the email itself: refused
    )
    strong = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )

    error_of(weak, 422)
    assert strong.status_code == 204, strong.text
    await login_session(client, user["email"], NEW_PASSWORD)


async def _outstanding_links(
    client: httpx.AsyncClient, outbox: list[RecordedEmail], email: str
) -> dict[str, str]:
    """A reset and a verification link of the account, both unused."""
    outbox.clear()
    await _request(client, "password-reset", email)
    await _request(client, "verify-email", email)
    reset, verify = (token_in(message) for message in outbox)
    return {"password-reset": reset, "verify-email": verify}


async def _confirm(client: httpx.AsyncClient, flow: str, token: str) -> httpx.Response:
    body = {"token": token}
    if flow == "password-reset":
        body["new_password"] = NEW_PASSWORD
    return await client.post(f"{API}/auth/{flow}/confirm", json=body)


@pytest.mark.parametrize("end", ["logout-all", "deactivation", "erasure"])
async def test_every_account_wide_session_end_kills_outstanding_links(
    client: httpx.AsyncClient, resources: Resources, outbox: list[RecordedEmail], end: str
) -> None:
    """Issue #17, third review, finding 3: a reset link outlived deactivation (and set a
    password after reactivation) and logout-all. The password change is
    `test_changing_the_password_ends_outstanding_reset_links`."""
    admin = await login_as(client, resources, "admin")
    user = await register_user(client)
    session = await login_session(client, user["email"])
    links = await _outstanding_links(client, outbox, user["email"])

    if end == "logout-all":
        ended = await client.post(f"{API}/auth/logout-all", headers=session.headers)
    elif end == "deactivation":
        ended = await client.post(f"{API}/users/{user['id']}/deactivate", headers=admin)
        assert ended.status_code == 200, ended.text
        ended = await client.post(f"{API}/users/{user['id']}/activate", headers=admin)
    else:
        ended = await client.delete(f"{API}/users/{user['id']}", headers=admin)
    assert ended.status_code in (200, 204), ended.text

    for flow, token in links.items():
        error_of(await _confirm(client, flow, token), 400, "invalid_token")


async def test_an_inactive_accounts_link_answers_exactly_like_an_invalid_one(
    client: httpx.AsyncClient, resources: Resources, outbox: list[RecordedEmail]
) -> None:
    user = await register_user(client)
    links = await _outstanding_links(client, outbox, user["email"])
    async with resources.session_factory() as db:  # deactivated behind the service's back
        account = await db.get(User, uuid.UUID(user["id"]))
        assert account is not None
        account.is_active = False
        await db.commit()

    for flow, token in links.items():
        inactive = await _confirm(client, flow, token)
        invalid = await _confirm(client, flow, "x" * 43)
        same = error_of(inactive, 400, "invalid_token")
        assert {**same, "request_id": None} == {**error_of(invalid, 400), "request_id": None}
