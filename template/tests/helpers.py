"""Helpers shared by the test suite: settings, users and the common error shape."""

import secrets
import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.security import PasswordHasher
from app.models import User
from app.schemas.user import UserCreate
from app.services.user_service import user_service

DEFAULT_PASSWORD = "correct horse battery staple"
API = "/api/v1"


def build_settings(
    *, database_url: str, redis_url: str | None = None, cache_key_prefix: str = "test:"
) -> Settings:
    """Fast, self-contained test settings (`.env` is ignored, so no local file leaks in)."""
    return Settings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        cache_key_prefix=cache_key_prefix,
        bcrypt_rounds=4,
        secret_key=secrets.token_urlsafe(32),
        log_json=True,
    )


def unique_email(name: str = "user") -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}@example.com"


async def create_user(
    db: AsyncSession,
    hasher: PasswordHasher,
    *,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    full_name: str | None = None,
) -> User:
    """A user registered through the service layer (no HTTP)."""
    data = UserCreate(email=email or unique_email(), password=password, full_name=full_name)
    return await user_service.register(db, data, hasher)


async def register_user(
    client: httpx.AsyncClient,
    *,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    full_name: str | None = None,
) -> dict[str, Any]:
    """A user registered through the API; returns the response body."""
    payload = {
        "email": email or unique_email(),
        "password": password,
        "full_name": full_name,
    }
    response = await client.post(f"{API}/auth/register", json=payload)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(
    client: httpx.AsyncClient, email: str, password: str = DEFAULT_PASSWORD
) -> dict[str, str]:
    """Bearer headers for the given credentials."""
    response = await client.post(f"{API}/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def error_of(response: httpx.Response, status_code: int, code: str | None = None) -> dict[str, Any]:
    """Assert the common error body shape and status; return the inner `error` object."""
    assert response.status_code == status_code, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]
    if code is not None:
        assert error["code"] == code
    return error
