"""Security headers on every response, `no-store` on credentials, no public API docs in
production (issue #17, findings 12 and 13)."""

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from tests.helpers import API, DEFAULT_PASSWORD, login_session, refresh, register_user


async def test_every_response_carries_the_security_headers(client: httpx.AsyncClient) -> None:
    for response in [
        await client.get("/health"),
        await client.get(f"{API}/users/me"),
        await client.get(f"{API}/articles"),
    ]:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


async def test_responses_carrying_credentials_are_not_stored(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    response = await client.post(
        f"{API}/auth/login",
        json={"email": user["email"], "password": DEFAULT_PASSWORD},
    )
    client.cookies.clear()
    session = await login_session(client, user["email"])
    renewed = await refresh(client, session)

    assert response.headers["Cache-Control"] == "no-store"
    assert renewed.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/docs", "/redoc", f"{API}/openapi.json"])
async def test_api_docs_are_off_in_production_unless_enabled(settings: Settings, path: str) -> None:
    production = settings.model_copy(update={"environment": "production"})
    enabled = production.model_copy(update={"docs_enabled": True})

    for app_settings, expected in [(production, 404), (enabled, 200), (settings, 200)]:
        transport = httpx.ASGITransport(app=create_app(app_settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get(path)).status_code == expected, (path, app_settings)


async def test_production_responses_require_https_from_then_on(settings: Settings) -> None:
    production = settings.model_copy(update={"environment": "production"})
    transport = httpx.ASGITransport(app=create_app(production))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/health")

    assert "max-age=31536000" in response.headers["Strict-Transport-Security"]
