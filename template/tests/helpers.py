"""Helpers shared by the test suite: settings, users, uploads, emails, the common error shape."""

import secrets
import socket
import uuid
from dataclasses import dataclass
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


# Small, so size limits are tested without moving megabytes around.
TEST_UPLOAD_MAX_BYTES = 100_000


def build_settings(
    *,
    database_url: str,
    redis_url: str | None = None,
    cache_key_prefix: str = "test:",
    **overrides: Any,
) -> Settings:
    """Fast, self-contained test settings (`.env` is ignored, so no local file leaks in).

    `overrides` carry the storage and email settings of the variant's test servers.
    """
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "redis_url": redis_url,
        "cache_key_prefix": cache_key_prefix,
        "bcrypt_rounds": 4,
        "secret_key": secrets.token_urlsafe(32),
        "log_json": True,
        "upload_max_bytes": TEST_UPLOAD_MAX_BYTES,
    }
    return Settings(_env_file=None, **(values | overrides))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a test server, or to fail on)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass(frozen=True, slots=True)
class RecordedEmail:
    """A message as a test email server received it."""

    recipients: list[str]
    sender: str
    subject: str
    html: str
    text: str | None


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


async def upload_file(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    content: bytes = b"hello, file",
    *,
    filename: str = "hello.txt",
    content_type: str = "text/plain",
) -> httpx.Response:
    """POST one file as multipart form data; returns the response as it is."""
    files = {"file": (filename, content, content_type)}
    return await client.post(f"{API}/files", files=files, headers=headers)
