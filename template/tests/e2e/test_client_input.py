"""No client input breaks the service: what the databases cannot store, numbers and
datetimes past what SQL holds, oversized bodies, and bodies read before permissions
are each answered with a 4xx in the common error shape, never a 500."""

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.core.resources import Resources
from app.main import create_app
from tests.helpers import (
    API,
    create_article,
    error_of,
    login,
    login_as,
    register_user,
    unique_email,
)

NUL = "a\u0000b"
# JSON may spell an unpaired surrogate; Python decodes it into a str UTF-8 cannot encode.
LONE_SURROGATE_JSON = '"a\\ud800b"'


def _locations(error: dict[str, Any]) -> list[list[Any]]:
    return [detail["loc"] for detail in error["details"]]


async def test_nul_in_an_article_title_is_refused(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await client.post(f"{API}/articles", headers=auth_headers, json={"title": NUL})

    error = error_of(response, 422, "request_validation_error")
    assert error["details"] == [
        {
            "loc": ["body", "title"],
            "message": "Text cannot contain the NUL character (U+0000)",
            "type": "text_nul",
        }
    ]


async def test_unpaired_surrogate_in_text_is_refused(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    body = '{"title": ' + LONE_SURROGATE_JSON + "}"
    response = await client.post(
        f"{API}/articles",
        headers={**auth_headers, "Content-Type": "application/json"},
        content=body.encode(),
    )

    error = error_of(response, 422, "request_validation_error")
    assert _locations(error) == [["body", "title"]]


@pytest.mark.parametrize(
    ("method", "path", "payload", "location"),
    [
        ("patch", "/users/me", {"full_name": NUL}, ["body", "full_name"]),
        ("post", "/auth/login", {"email": "a@example.com", "password": NUL}, ["body", "password"]),
        ("post", "/rbac/roles", {"name": "reviewer", "description": NUL}, ["body", "description"]),
        ("get", "/articles?fields=title%00", None, ["query", "fields"]),
        ("get", "/users?role=a%00b", None, ["query", "role"]),
    ],
)
async def test_text_the_database_cannot_store_is_refused_everywhere(
    client: httpx.AsyncClient,
    resources: Resources,
    method: str,
    path: str,
    payload: dict[str, Any] | None,
    location: list[str],
) -> None:
    headers = await login_as(client, resources, "admin")

    response = await client.request(method, API + path, headers=headers, json=payload)

    assert location in _locations(error_of(response, 422, "request_validation_error"))


@pytest.mark.parametrize("path", ["/articles", "/users"])
@pytest.mark.parametrize("offset", ["9223372036854775808", "2147483648"])
async def test_offset_past_what_sql_holds_is_refused(
    client: httpx.AsyncClient, resources: Resources, path: str, offset: str
) -> None:
    headers = await login_as(client, resources, "admin")

    response = await client.get(f"{API}{path}", headers=headers, params={"offset": offset})

    error = error_of(response, 422, "request_validation_error")
    assert _locations(error) == [["query", "offset"]]
    assert error["details"][0]["type"] == "less_than_equal"


async def test_datetime_that_overflows_in_utc_is_refused(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await client.get(
        f"{API}/articles",
        headers=auth_headers,
        params={"created_after": "9999-12-31T23:59:59-23:59"},
    )

    error = error_of(response, 422, "request_validation_error")
    assert error["details"] == [
        {
            "loc": ["query", "created_after"],
            "message": "Datetime is out of range once converted to UTC",
            "type": "datetime_out_of_range",
        }
    ]


def _cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort", "value"),
    [
        ("title", NUL),
        ("-created_at", "9999-12-31T23:59:59-23:59"),
        ("-created_at", "2024-01-01T00:00:00"),  # no timezone
    ],
)
async def test_forged_cursor_values_are_refused(
    client: httpx.AsyncClient, auth_headers: dict[str, str], sort: str, value: str
) -> None:
    cursor = _cursor(sort, value, "00000000-0000-0000-0000-000000000001")

    response = await client.get(
        f"{API}/articles", headers=auth_headers, params={"sort": sort, "cursor": cursor}
    )

    error = error_of(response, 422, "invalid_cursor")
    assert error["message"] == "The cursor is not one this endpoint issued"


async def test_cursor_with_an_id_of_the_wrong_type_is_refused(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    await create_article(client, auth_headers, publish=True)
    cursor = _cursor("title", "x", 2**64)

    response = await client.get(
        f"{API}/articles", headers=auth_headers, params={"sort": "title", "cursor": cursor}
    )

    error_of(response, 422, "invalid_cursor")


async def test_a_422_lists_a_bounded_number_of_errors(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    """80,000 unknown keys in a 0.8 MB body: the answer names the first 50 and the count,
    not 80,000 details (7.5 MB)."""
    body = "{" + ",".join(f'"k{i}": 1' for i in range(80_000)) + ', "title": "x"}'
    response = await client.post(
        f"{API}/articles",
        headers={**auth_headers, "Content-Type": "application/json"},
        content=body.encode(),
    )

    error = error_of(response, 422, "request_validation_error")
    assert len(error["details"]) == 50
    assert error["details"][0] == {
        "loc": ["body", "k0"],
        "message": "Extra inputs are not permitted",
        "type": "extra_forbidden",
    }
    assert error["message"] == "The request is invalid (80000 errors; the first 50 are listed)"
    assert len(response.content) < 10_000


async def test_an_error_about_many_names_stays_small(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """80,000 unknown permission names (0.9 MB) once came back listed in one message
    (0.8 MB): the message names a few and counts the rest."""
    headers = await login_as(client, resources, "admin")
    names = [f"x{i}:y" for i in range(80_000)]
    response = await client.post(
        f"{API}/rbac/roles", headers=headers, json={"name": "many", "permissions": names}
    )

    error_of(response, 422, "request_validation_error")
    assert "'x0:y'" in response.text
    assert "and 79995 more" in response.text
    assert len(response.content) < 10_000


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=bogus",
        "application/json; charset=latin-1",
    ],
)
async def test_a_json_body_not_sent_as_json_is_415(
    client: httpx.AsyncClient, auth_headers: dict[str, str], content_type: str
) -> None:
    response = await client.post(
        f"{API}/articles",
        headers={**auth_headers, "Content-Type": content_type},
        content=b'{"title": "typed"}',
    )

    error_of(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON; charset=UTF-8",
        'application/json; charset="utf-8"',
        "application/merge-patch+json",
    ],
)
async def test_json_media_types_are_accepted(
    client: httpx.AsyncClient, auth_headers: dict[str, str], content_type: str
) -> None:
    response = await client.post(
        f"{API}/articles",
        headers={**auth_headers, "Content-Type": content_type},
        content=b'{"title": "typed"}',
    )

    assert response.status_code == 201, response.text


# Request body limit ---------------------------------------------------------------


async def test_oversized_body_is_refused_by_its_declared_length(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    limit = resources.settings.request_max_bytes
    chunks_read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal chunks_read
        for _ in range(limit // 1024 + 2):
            chunks_read += 1
            yield b" " * 1024

    response = await client.post(
        f"{API}/auth/login",
        content=body(),
        headers={"Content-Type": "application/json", "Content-Length": str(limit + 2048)},
    )

    error = error_of(response, 413, "payload_too_large")
    assert error["details"] == {"max_bytes": limit}
    assert chunks_read <= 1  # refused before the body was read


async def test_oversized_chunked_body_is_refused_at_the_limit(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    limit = resources.settings.request_max_bytes
    chunks_read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal chunks_read
        for _ in range(limit // 1024 * 4):
            chunks_read += 1
            yield b" " * 1024

    response = await client.post(
        f"{API}/auth/login", content=body(), headers={"Content-Type": "application/json"}
    )

    error_of(response, 413, "payload_too_large")
    assert "content-length" not in response.request.headers
    assert chunks_read <= limit // 1024 + 2  # stopped at the limit, not at the end


async def test_bodies_within_the_limit_are_read(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register_user(client, email=email, full_name="x" * 200)

    response = await client.post(
        f"{API}/auth/login", json={"email": email, "password": "wrong-password-1234"}
    )

    error_of(response, 401)


async def test_upload_without_permission_is_refused_before_the_body_is_read(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    headers = await login_as(client, resources)  # no role: no files:write
    chunks_read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal chunks_read
        yield b"--b\r\nContent-Disposition: form-data; name=file; filename=a.txt\r\n\r\n"
        for _ in range(64):
            chunks_read += 1
            yield b"x" * 65536

    response = await client.post(
        f"{API}/files",
        content=body(),
        headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
    )

    error_of(response, 403, "forbidden")
    assert chunks_read == 0


async def test_upload_keeps_its_own_larger_limit(settings: Settings, resources: Resources) -> None:
    # An instance whose request bodies are limited far below the upload limit.
    app = create_app(settings.model_copy(update={"request_max_bytes": 1024}))
    max_bytes = settings.upload_max_bytes
    content = b"x" * (max_bytes - 10)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        auth_headers = await login(client, (await register_user(client))["email"])
        accepted = await client.post(
            f"{API}/files", files={"file": ("big.txt", content, "text/plain")}, headers=auth_headers
        )
        refused = await client.post(
            f"{API}/files",
            files={"file": ("big.txt", content + b"x" * 100_000, "text/plain")},
            headers=auth_headers,
        )
        other_route = await client.post(
            f"{API}/articles", json={"title": "x" * 2000}, headers=auth_headers
        )

    assert accepted.status_code == 201, accepted.text
    error = error_of(refused, 413, "payload_too_large")
    assert error["message"] == f"Files are limited to {max_bytes} bytes"
    assert error["details"] == {"max_bytes": max_bytes}
    assert error_of(other_route, 413, "payload_too_large")["details"] == {"max_bytes": 1024}


async def test_nul_in_an_upload_file_name_is_refused(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    # Written out by hand: httpx would percent-encode the NUL in the file name.
    body = (
        b"--b\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a\x00b.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
        b"hello\r\n--b--\r\n"
    )

    response = await client.post(
        f"{API}/files",
        content=body,
        headers={**auth_headers, "Content-Type": "multipart/form-data; boundary=b"},
    )

    error = error_of(response, 422, "validation_error")
    assert error["details"][0]["loc"] == ["body", "file", "filename"]
    assert error["details"][0]["type"] == "unstorable_text"


@pytest.mark.parametrize(
    "media_type", ["MULTIPART/FORM-DATA", "Multipart/Form-Data; charset=utf-8"]
)
async def test_the_multipart_media_type_is_case_insensitive(
    client: httpx.AsyncClient, auth_headers: dict[str, str], media_type: str
) -> None:
    """RFC 9110 8.3.1: type and subtype are case-insensitive (python-multipart before
    0.0.33 kept the capitals when parameters followed, and no form was read)."""
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
        b"hello\r\n--XyZ--\r\n"
    )

    response = await client.post(
        f"{API}/files",
        content=body,
        headers={**auth_headers, "Content-Type": f"{media_type}; boundary=XyZ"},
    )

    assert response.status_code == 201, response.text
    assert response.json()["size"] == 5


@pytest.mark.parametrize(
    "body",
    [
        # The contract fuzz's find: a part with no header block (Starlette before 1.7
        # let python-multipart's parse error escape as a 500).
        b"--b\r\n-105992891326--b--\r\n",
        b"--b\r\nContent-Disposition: form-data; name=file\rfilename=a\r\n\r\nx\r\n--b--\r\n",
        b"--b\r\nno colon in this header line\r\n\r\nx\r\n--b--\r\n",
        b"--b\r\nContent-Disposition: form-data; filename=a.txt\r\n\r\nx\r\n--b--\r\n",
        b"--c\r\nContent-Disposition: form-data; name=file\r\n\r\nx\r\n--c--\r\n",
        b"--b\r\nContent-Disposition: form-data; name=file; filename=a.txt\r\n\r\nx",
        b"\x00\xff" * 64,
    ],
    ids=[
        "no-header-block",
        "bare-cr-in-a-header",
        "header-without-colon",
        "part-without-name",
        "other-boundary",
        "unterminated",
        "binary",
    ],
)
async def test_a_malformed_multipart_body_is_a_client_error(
    client: httpx.AsyncClient, auth_headers: dict[str, str], body: bytes
) -> None:
    response = await client.post(
        f"{API}/files",
        content=body,
        headers={**auth_headers, "Content-Type": "multipart/form-data; boundary=b"},
    )

    error = error_of(response, response.status_code)
    assert response.status_code in {400, 422}, response.text
    assert error["code"] in {"bad_request", "validation_error"}


# Standard protocol behaviour ------------------------------------------------------


@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
async def test_health_checks_answer_head(client: httpx.AsyncClient, path: str) -> None:
    get = await client.get(path)
    head = await client.head(path)

    assert head.status_code == get.status_code == 200
    assert head.headers["content-type"] == get.headers["content-type"]


async def test_metrics_answer_head(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"metrics_enabled": True}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        head = await client.head("/metrics")

    assert head.status_code == 200
    assert head.headers["content-type"].startswith("text/plain")
