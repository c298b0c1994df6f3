"""Files through the API, on the variant's real storage: upload, read, download, delete."""

import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.resources import Resources
from app.models import File
from app.storage.base import Storage, StorageError
from tests.helpers import API, TEST_UPLOAD_MAX_BYTES, error_of, login_as, upload_file

Download = Callable[[str, dict[str, str]], Awaitable[httpx.Response]]
StoredKeys = Callable[[str], set[str]]
KEY = re.compile(r"^[0-9a-f]{32}/[0-9a-f]{32}$")


async def owner_prefix(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.get(f"{API}/users/me", headers=headers)
    return str(response.json()["id"]).replace("-", "")


async def count_files(db: AsyncSession) -> int:
    return await db.scalar(select(func.count()).select_from(File)) or 0


async def test_upload_then_read_download_and_delete(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    download: Download,
    stored_keys: StoredKeys,
) -> None:
    content = b"%PDF-1.7 not really, but bytes all the same\n" * 50
    response = await upload_file(
        client, auth_headers, content, filename="report.pdf", content_type="application/pdf"
    )

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["original_name"] == "report.pdf"
    assert created["size"] == len(content)
    assert created["content_type"] == "application/pdf"
    assert created["checksum_sha256"] == hashlib.sha256(content).hexdigest()
    assert created["download_url"].endswith(f"{API}/files/{created['id']}/content")
    [key] = stored_keys(await owner_prefix(client, auth_headers))
    assert KEY.match(key)

    read = await client.get(f"{API}/files/{created['id']}", headers=auth_headers)
    assert read.status_code == 200
    assert read.json() == created

    downloaded = await download(created["id"], auth_headers)
    assert downloaded.status_code == 200
    assert downloaded.content == content
    assert downloaded.headers["content-type"] == "application/pdf"
    assert downloaded.headers["content-disposition"].startswith("attachment;")

    deleted = await client.delete(f"{API}/files/{created['id']}", headers=auth_headers)
    assert deleted.status_code == 204
    error_of(await client.get(f"{API}/files/{created['id']}", headers=auth_headers), 404)
    assert stored_keys(await owner_prefix(client, auth_headers)) == set()


async def test_someone_elses_file_is_not_found(
    client: httpx.AsyncClient, auth_headers: dict[str, str], other_auth_headers: dict[str, str]
) -> None:
    file_id = (await upload_file(client, auth_headers)).json()["id"]

    for method, path in [
        ("GET", f"{API}/files/{file_id}"),
        ("GET", f"{API}/files/{file_id}/content"),
        ("DELETE", f"{API}/files/{file_id}"),
    ]:
        response = await client.request(method, path, headers=other_auth_headers)
        error_of(response, 404, "not_found")
    assert (await client.get(f"{API}/files/{file_id}", headers=auth_headers)).status_code == 200


async def test_uploading_needs_authentication(client: httpx.AsyncClient) -> None:
    error_of(await upload_file(client, {}), 401, "unauthorized")


@pytest.mark.parametrize(
    ("filename", "shown_as"),
    [
        ("../../etc/passwd", "passwd"),
        ("/etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("..", "upload"),
        ("résumé 2024.txt", "résumé 2024.txt"),
    ],
)
async def test_client_file_names_never_choose_the_key(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    stored_keys: StoredKeys,
    filename: str,
    shown_as: str,
) -> None:
    response = await upload_file(client, auth_headers, filename=filename)

    assert response.status_code == 201, response.text
    assert response.json()["original_name"] == shown_as
    [key] = stored_keys(await owner_prefix(client, auth_headers))
    assert KEY.match(key), key


async def test_a_file_at_the_limit_is_accepted_and_one_byte_more_is_413(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    at_limit = await upload_file(client, auth_headers, b"x" * TEST_UPLOAD_MAX_BYTES)
    over_limit = await upload_file(client, auth_headers, b"x" * (TEST_UPLOAD_MAX_BYTES + 1))

    assert at_limit.status_code == 201, at_limit.text
    error = error_of(over_limit, 413, "payload_too_large")
    assert error["details"] == {"max_bytes": TEST_UPLOAD_MAX_BYTES}  # the file's limit


async def test_a_declared_content_length_over_the_limit_is_413(
    client: httpx.AsyncClient, auth_headers: dict[str, str], stored_keys: StoredKeys
) -> None:
    response = await upload_file(client, auth_headers, b"x" * (3 * TEST_UPLOAD_MAX_BYTES))

    assert "content-length" in response.request.headers
    error_of(response, 413, "payload_too_large")
    assert stored_keys(await owner_prefix(client, auth_headers)) == set()


async def test_a_chunked_body_is_refused_while_it_streams(
    client: httpx.AsyncClient, auth_headers: dict[str, str], db_session: AsyncSession
) -> None:
    boundary = "test-boundary"
    sent_chunks = 0
    total_chunks = 100  # 100 x 16 KiB, far past the limit

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent_chunks
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="big.txt"\r\nContent-Type: text/plain\r\n\r\n'
        ).encode()
        for _ in range(total_chunks):
            sent_chunks += 1
            yield b"x" * 16 * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**auth_headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    response = await client.post(f"{API}/files", content=body(), headers=headers)

    assert "content-length" not in response.request.headers
    error_of(response, 413, "payload_too_large")
    assert sent_chunks < total_chunks, "the whole body was read before refusing it"
    assert await count_files(db_session) == 0


@pytest.mark.parametrize("content_type", ["text/html", "application/x-msdownload", "image/svg+xml"])
async def test_a_content_type_outside_the_allow_list_is_415(
    client: httpx.AsyncClient, auth_headers: dict[str, str], content_type: str
) -> None:
    response = await upload_file(client, auth_headers, b"<svg/>", content_type=content_type)

    error = error_of(response, 415, "unsupported_media_type")
    assert "image/png" in error["details"]["allowed"]


async def test_a_request_without_the_file_field_is_422(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await client.post(
        f"{API}/files", files={"attachment": ("a.txt", b"x", "text/plain")}, headers=auth_headers
    )

    error_of(response, 422, "validation_error")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"file=x"),
        ("text/plain", b"x"),
        ("application/json", b'{"file": "x"}'),
        (None, b"x"),
    ],
)
async def test_an_upload_not_sent_as_multipart_is_415(
    client: httpx.AsyncClient, auth_headers: dict[str, str], content_type: str | None, body: bytes
) -> None:
    """The document says `multipart/form-data`: any other body is refused by its type, not
    blamed on a missing field."""
    headers = auth_headers | ({"Content-Type": content_type} if content_type else {})
    response = await client.post(f"{API}/files", content=body, headers=headers)

    error = error_of(response, 415, "unsupported_media_type")
    assert error["details"] == {"allowed": ["multipart/form-data"]}


async def test_a_failed_commit_leaves_no_object_and_no_row(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    stored_keys: StoredKeys,
    db_session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = await owner_prefix(client, auth_headers)

    async def failing_commit(self: AsyncSession) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(AsyncSession, "commit", failing_commit)
    response = await upload_file(client, auth_headers)
    monkeypatch.undo()

    error_of(response, 500, "internal_error")
    assert stored_keys(prefix) == set(), "the object outlived its failed row"
    assert await count_files(db_session) == 0


async def test_a_storage_failure_is_503_and_writes_no_row(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    storage: Storage,
    db_session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def failing_upload(*args: Any, **kwargs: Any) -> None:
        raise StorageError("storage is down")

    monkeypatch.setattr(storage, "upload", failing_upload)
    response = await upload_file(client, auth_headers)

    error_of(response, 503, "service_unavailable")
    assert await count_files(db_session) == 0


async def test_a_files_admin_may_read_and_delete_anyones_file(
    client: httpx.AsyncClient, resources: Resources, auth_headers: dict[str, str]
) -> None:
    uploaded = await upload_file(client, auth_headers)
    assert uploaded.status_code == 201
    path = f"{API}/files/{uploaded.json()['id']}"
    admin_headers = await login_as(client, resources, "admin")
    viewer_headers = await login_as(client, resources, "viewer")

    assert (await client.get(path, headers=admin_headers)).status_code == 200
    error_of(await client.delete(path, headers=viewer_headers), 403, "forbidden")
    assert (await client.delete(path, headers=admin_headers)).status_code == 204
    error_of(await client.get(path, headers=auth_headers), 404, "not_found")
