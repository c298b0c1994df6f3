"""The general rate limits: every API request counts, per user when logged in, else per
client address, with RateLimit-* headers, 429 + Retry-After, and per-route limits.

Limits here are per hour, so no test straddles a window edge that would move its counts.
"""

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from app.core.config import Settings
from app.core.rate_limit import parse_limit, route_limit
from app.core.resources import Resources
from tests.helpers import (
    API,
    AppFactory,
    client_from,
    error_of,
    login,
    login_session,
    register_user,
    upload_file,
)

ME = f"{API}/users/me"


def set_limits(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, *, per_user: str, per_ip: str
) -> None:
    """Lower the running app's limits for one test (they are read on every request)."""
    monkeypatch.setattr(settings, "rate_limit_per_user", per_user)
    monkeypatch.setattr(settings, "rate_limit_per_ip", per_ip)


async def test_the_limit_answers_429_with_retry_after_and_every_answer_has_headers(
    app: FastAPI, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client_from(app, "198.51.100.10") as client:
        user = await register_user(client)
        headers = await login(client, user["email"])
        set_limits(monkeypatch, resources.settings, per_user="3/hour", per_ip="1000/hour")
        answers = [await client.get(ME, headers=headers) for _ in range(4)]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert [answer.headers["RateLimit-Limit"] for answer in answers] == ["3"] * 4
    assert [answer.headers["RateLimit-Remaining"] for answer in answers] == ["2", "1", "0", "0"]
    assert all(1 <= int(answer.headers["RateLimit-Reset"]) <= 3600 for answer in answers[:3])
    refused = answers[-1]
    error = error_of(refused, 429, "rate_limited")
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 2 * 3600
    # Refused, the quota resets when a retry fits: both headers say the same.
    assert refused.headers["RateLimit-Reset"] == refused.headers["Retry-After"]
    assert error["details"] == {"retry_after_seconds": retry_after}
    assert "Retry-After" not in answers[0].headers


async def test_error_answers_carry_the_headers_too(
    app: FastAPI, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_limits(monkeypatch, resources.settings, per_user="1000/hour", per_ip="5/hour")
    async with client_from(app, "198.51.100.11") as client:
        missing = await client.get(ME)  # no token: 401, counted for the address
        wrong = await client.post(
            f"{API}/auth/login", json={"email": "nobody@example.com", "password": "not-it"}
        )

    error_of(missing, 401)
    error_of(wrong, 401)
    assert missing.headers["RateLimit-Remaining"] == "4"
    assert wrong.headers["RateLimit-Remaining"] == "3"


async def test_users_and_addresses_have_separate_budgets(
    app: FastAPI, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client_from(app, "198.51.100.12") as client:
        alice = await login(client, (await register_user(client))["email"])
        bob = await login(client, (await register_user(client))["email"])
        set_limits(monkeypatch, resources.settings, per_user="2/hour", per_ip="2/hour")
        alice_answers = [(await client.get(ME, headers=alice)).status_code for _ in range(3)]
        bob_answer = await client.get(ME, headers=bob)
        anonymous = [(await client.get(ME)).status_code for _ in range(3)]
    async with client_from(app, "198.51.100.13") as elsewhere:
        other_address = await elsewhere.get(ME)

    assert alice_answers == [200, 200, 429]
    assert bob_answer.status_code == 200  # same address, another user: own budget
    assert anonymous == [401, 401, 429]  # the users' requests did not use the address's
    assert other_address.status_code == 401  # and each address has its own


async def test_a_refused_token_counts_against_the_address(
    app: FastAPI, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client_from(app, "198.51.100.14") as client:
        session = await login_session(client, (await register_user(client))["email"])
        forged = {
            name: value.replace(session.access_token, "not-a-token")
            for name, value in session.headers.items()
        }
        set_limits(monkeypatch, resources.settings, per_user="1000/hour", per_ip="2/hour")
        refused = [await client.get(ME, headers=forged) for _ in range(3)]
        still_fine = await client.get(ME, headers=session.headers)

    assert [answer.status_code for answer in refused] == [401, 401, 429]
    assert error_of(refused[0], 401)["message"] == "Invalid access token"
    assert still_fine.status_code == 200


def _upload_endpoint(app: FastAPI) -> object:
    [endpoint] = [
        route.endpoint
        for route in iter_route_contexts(app.routes)
        if route.path_format == f"{API}/files" and "POST" in (route.methods or ())
    ]
    return endpoint


async def test_a_route_limit_applies_instead_of_the_default(
    app: FastAPI, client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    declared = route_limit(_upload_endpoint(app))
    assert declared is not None
    allowed = parse_limit(declared.limit).amount

    uploads = [(await upload_file(client, auth_headers)).status_code for _ in range(allowed + 1)]
    me = await client.get(ME, headers=auth_headers)

    assert uploads == [201] * allowed + [429]
    assert me.status_code == 200  # the route's own count, apart from the default one
    assert int(me.headers["RateLimit-Limit"]) == 10000
    openapi = (await client.get(f"{API}/openapi.json")).json()
    upload = openapi["paths"][f"{API}/files"]["post"]
    assert f"Rate limit: {declared.limit} per caller." in upload["description"]
    assert "429" in upload["responses"]


async def test_health_checks_are_exempt(
    app: FastAPI, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_limits(monkeypatch, resources.settings, per_user="1/hour", per_ip="1/hour")
    async with client_from(app, "198.51.100.15") as client:
        checks = [await client.get("/health/live") for _ in range(3)]

    assert [check.status_code for check in checks] == [200] * 3
    assert all("RateLimit-Limit" not in check.headers for check in checks)


async def test_limits_can_be_switched_off(
    app: FastAPI, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client_from(app, "198.51.100.16") as client:
        user = await register_user(client)
        headers = await login(client, user["email"])
        set_limits(monkeypatch, resources.settings, per_user="1/hour", per_ip="1/hour")
        monkeypatch.setattr(resources.settings, "rate_limit_enabled", False)
        answers = [await client.get(ME) for _ in range(3)]
        logged_in = [await client.get(ME, headers=headers) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [401] * 3
    assert [answer.status_code for answer in logged_in] == [200] * 3
    assert all("RateLimit-Limit" not in answer.headers for answer in answers + logged_in)


async def test_instances_share_the_counts_in_redis(
    resources: Resources, app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not resources.settings.redis_url:
        pytest.skip("in-process counts are per instance; set TEST_REDIS_URL")
    async with app_factory() as first, app_factory() as second:
        headers = await login(first, (await register_user(first))["email"])
        set_limits(monkeypatch, resources.settings, per_user="3/hour", per_ip="1000/hour")
        statuses = [
            (await first.get(ME, headers=headers)).status_code,
            (await second.get(ME, headers=headers)).status_code,
            (await first.get(ME, headers=headers)).status_code,
            (await second.get(ME, headers=headers)).status_code,
        ]

    assert statuses == [200, 200, 200, 429]
