import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.core.config import Settings
from app.core.resources import Resources
from app.main import create_app
from tests.helpers import (
    API,
    UNREACHABLE_REDIS,
    app_with_cache_at,
    build_settings,
    error_of,
    free_port,
    login_as,
    upload_file,
)

HEX_32 = re.compile(r"^[0-9a-f]{32}$")


async def test_request_validation_error_has_the_common_shape(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(f"{API}/auth/register", json={"email": "not-an-email"})

    error = error_of(response, 422, "request_validation_error")
    assert isinstance(error["details"], list)
    locations = {tuple(detail["loc"]) for detail in error["details"]}
    assert locations == {("body", "email"), ("body", "password")}
    for detail in error["details"]:
        assert set(detail) == {"loc", "message", "type"}


async def test_malformed_json_is_a_validation_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/auth/login",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )

    error_of(response, 422, "request_validation_error")


async def test_unknown_route_is_404_with_the_common_shape(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"{API}/does-not-exist")

    error = error_of(response, 404, "not_found")
    assert error["details"] is None


async def test_wrong_method_is_405_with_the_common_shape(
    client: httpx.AsyncClient,
) -> None:
    response = await client.delete("/health/live")

    error_of(response, 405, "method_not_allowed")


async def test_a_wildcard_origin_gets_no_credentials(settings: Settings) -> None:
    """`CORS_ORIGINS=["*"]` (refused in production): any site may read, but never with the
    user's cookies: the origin is not reflected with `Allow-Credentials`."""
    app = create_app(settings.model_copy(update={"cors_origins": ["*"]}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(
            "/health/live", headers={"Origin": "https://evil.example", "Cookie": "session=1"}
        )

    # Starlette before 1.0 names the caller's origin rather than `*` when a cookie is sent;
    # either way, without Allow-Credentials a browser keeps the response from the page.
    assert response.headers["access-control-allow-origin"] in {"*", "https://evil.example"}
    assert "access-control-allow-credentials" not in response.headers


async def test_a_trailing_slash_is_404_not_a_redirect(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/articles/")

    error_of(response, 404, "not_found")


async def test_head_is_answered_wherever_get_is(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """RFC 9110, 9.1: the same status and headers as GET, without the body, on every
    route that serves GET (the file download and the article list included)."""
    headers = await login_as(client, resources, "admin")
    upload = await upload_file(client, headers, b"hello head")
    assert upload.status_code == 201, upload.text
    for path in ("/articles", "/users/me", f"/files/{upload.json()['id']}/content"):
        get = await client.get(API + path, headers=headers)
        head = await client.head(API + path, headers=headers)

        assert head.status_code == get.status_code < 400, path
        assert head.content == b""
        for name in ("content-type", "content-length", "ratelimit-limit"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)
        # A redirect to the storage may carry a signature of the method and the second.
        assert unsigned(head.headers.get("location")) == unsigned(get.headers.get("location"))

    refused = await client.head(f"{API}/users/me")
    assert refused.status_code == 401
    assert refused.content == b""


def unsigned(location: str | None) -> str | None:
    """A redirect's target without its query (where a signed URL keeps its signature)."""
    return None if location is None else urlsplit(location)._replace(query="").geturl()


async def test_a_valid_client_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/does-not-exist", headers={"X-Request-ID": "trace-42.a:b"})

    assert response.headers["X-Request-ID"] == "trace-42.a:b"
    assert response.json()["error"]["request_id"] == "trace-42.a:b"


@pytest.mark.parametrize("sent", [None, "has spaces", "x" * 129, "bad<id>"])
async def test_a_request_id_is_generated_when_absent_or_invalid(
    client: httpx.AsyncClient, sent: str | None
) -> None:
    headers = {"X-Request-ID": sent} if sent is not None else {}

    response = await client.get("/health/live", headers=headers)

    assert response.status_code == 200
    assert HEX_32.match(response.headers["X-Request-ID"])


async def test_unhandled_exception_is_a_500_without_internals(tmp_path: Path) -> None:
    settings = build_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'boom.db'}")
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/boom", headers={"X-Request-ID": "boom-1"})

    error = error_of(response, 500, "internal_error")
    assert error["request_id"] == "boom-1"
    assert error["message"] == "Internal server error"
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text


async def test_an_unreachable_database_is_a_503_to_retry(settings: Settings) -> None:
    """A PostgreSQL URL where nothing listens: the driver's real refusal, on a route that
    needs the database. (A connection dropped mid-request, and one terminated inside its
    transaction, are in test_service_failures.py, on a real PostgreSQL.)"""
    down = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere"
    app = create_app(settings.model_copy(update={"database_url": down}))

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post(
                f"{API}/auth/login", json={"email": "ada@example.com", "password": "x" * 12}
            )

    error_of(response, 503, "service_unavailable")
    assert response.headers["Retry-After"] == "5"


async def test_an_unreachable_cache_is_a_503_to_retry(tmp_path: Path, settings: Settings) -> None:
    # Every API request is authenticated and counted in the cache, public ones included.
    async with app_with_cache_at(settings, UNREACHABLE_REDIS, tmp_path) as client:
        anonymous = await client.get(f"{API}/articles")
        with_a_token = await client.get(
            f"{API}/users/me", headers={"Authorization": "Bearer not-even-a-jwt"}
        )

    for response in (anonymous, with_a_token):
        error = error_of(response, 503, "service_unavailable")
        assert error["message"] == "The cache is unavailable; try again shortly"
        assert response.headers["Retry-After"] == "5"


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="needs a Redis to refuse")
@pytest.mark.skipif(
    urlsplit(os.environ.get("TEST_REDIS_URL", "")).scheme == "redis+sentinel",
    reason="redis-py reports sentinels refusing a password as no primary found (a 503)",
)
async def test_a_refused_cache_password_is_a_500_not_an_outage(
    tmp_path: Path, settings: Settings
) -> None:
    # A configuration to fix, not an outage to wait out: no "try again" for the client,
    # and the traceback goes to the log (and to error tracking).
    server = urlsplit(os.environ["TEST_REDIS_URL"])
    addresses = server.netloc.rpartition("@")[2]  # a Cluster URL names several
    # A user the servers do not know.
    wrong_password = server._replace(netloc=f"nobody:not-the-password@{addresses}")
    async with app_with_cache_at(settings, wrong_password.geturl(), tmp_path) as client:
        response = await client.get(f"{API}/articles")

    error_of(response, 500, "internal_error")
    assert "Retry-After" not in response.headers
