"""Login is rate limited per account and per client IP, with 429 and Retry-After."""

import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.core.resources import Resources
from tests.helpers import API, client_from, error_of, register_user, unique_email


@pytest.fixture
def strict_login_limits(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(resources.settings, "login_rate_limit_per_account", "3/minute")
    monkeypatch.setattr(resources.settings, "login_rate_limit_per_ip", "5/minute")
    return resources.settings


async def test_login_attempts_per_account_are_limited(
    app: FastAPI, strict_login_limits: Settings
) -> None:
    async with client_from(app, "198.51.100.1") as client:
        user = await register_user(client)
        attempts = [
            await client.post(
                f"{API}/auth/login", json={"email": user["email"], "password": "wrong-guess"}
            )
            for _ in range(4)
        ]

    assert [response.status_code for response in attempts] == [401, 401, 401, 429]
    error = error_of(attempts[-1], 429, "rate_limited")
    retry_after = int(attempts[-1].headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert error["details"] == {"retry_after_seconds": retry_after}


async def test_login_attempts_per_ip_are_limited_across_accounts(
    app: FastAPI, strict_login_limits: Settings
) -> None:
    async with client_from(app, "198.51.100.2") as client:
        statuses = [
            (
                await client.post(
                    f"{API}/auth/login", json={"email": unique_email(), "password": "guess-it"}
                )
            ).status_code
            for _ in range(6)
        ]
    async with client_from(app, "198.51.100.3") as other_client:
        elsewhere = await other_client.post(
            f"{API}/auth/login", json={"email": unique_email(), "password": "guess-it"}
        )

    assert statuses == [401] * 5 + [429]
    assert elsewhere.status_code == 401  # another IP has its own budget
