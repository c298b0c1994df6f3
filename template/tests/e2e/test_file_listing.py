"""`GET /files` on the shared list machinery, with the variant's real storage behind the
uploads: your own files only, everyone's for a `files:moderate` holder (as for one file);
filters, sort orders, both kinds of paging and field selection; bad parameters are a 422
in the common shape."""

from typing import Any

import httpx
import pytest

from app.core.resources import Resources
from tests.helpers import (
    API,
    error_of,
    get_page,
    login,
    login_as,
    register_user,
    set_roles,
    upload_file,
)

FILES = f"{API}/files"


async def _upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    name: str,
    size: int = 10,
    content_type: str = "text/plain",
) -> dict[str, Any]:
    response = await upload_file(
        client, headers, b"x" * size, filename=name, content_type=content_type
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _page(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    return await get_page(client, FILES, headers, **params)


async def _names(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    page = await _page(client, headers, fields="original_name", **params)
    return [item["original_name"] for item in page["items"]]


async def _my_id(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    return str((await client.get(f"{API}/users/me", headers=headers)).json()["id"])


async def test_each_owner_lists_only_their_own_files(
    client: httpx.AsyncClient, auth_headers: dict[str, str], other_auth_headers: dict[str, str]
) -> None:
    mine = [await _upload(client, auth_headers, name) for name in ("a.txt", "b.txt")]
    theirs = await _upload(client, other_auth_headers, "c.txt")
    my_id = await _my_id(client, auth_headers)

    my_page = await _page(client, auth_headers)
    their_page = await _page(client, other_auth_headers)
    # Naming someone else as the owner finds nothing, rather than their files.
    prying = await _page(client, other_auth_headers, owner_id=my_id)

    assert my_page["total"] == 2
    assert {item["id"] for item in my_page["items"]} == {file["id"] for file in mine}
    assert {item["owner_id"] for item in my_page["items"]} == {my_id}
    assert [item["id"] for item in their_page["items"]] == [theirs["id"]]
    assert prying["items"] == []
    assert prying["total"] == 0


async def test_an_item_is_the_files_metadata_without_its_download_url(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    created = await _upload(client, auth_headers, "report.pdf", content_type="application/pdf")

    [item] = (await _page(client, auth_headers))["items"]

    assert item == {
        "id": created["id"],
        "owner_id": await _my_id(client, auth_headers),
        "original_name": "report.pdf",
        "size": created["size"],
        "content_type": "application/pdf",
        "checksum_sha256": created["checksum_sha256"],
        "created_at": item["created_at"],
    }
    detail = (await client.get(f"{FILES}/{created['id']}", headers=auth_headers)).json()
    assert detail["created_at"].removesuffix("Z") == item["created_at"].removesuffix("Z")


async def test_a_files_admin_lists_everyones_files_and_filters_by_owner(
    client: httpx.AsyncClient,
    resources: Resources,
    auth_headers: dict[str, str],
    other_auth_headers: dict[str, str],
) -> None:
    await _upload(client, auth_headers, "a.txt")
    await _upload(client, other_auth_headers, "b.txt")
    admin = await login_as(client, resources, "admin")
    editor = await login_as(client, resources, "editor")  # files:read, not files:admin
    other_id = await _my_id(client, other_auth_headers)

    assert sorted(await _names(client, admin)) == ["a.txt", "b.txt"]
    assert await _names(client, admin, owner_id=other_id) == ["b.txt"]
    assert await _names(client, editor) == []


async def test_a_files_moderator_lists_the_files_it_may_open(
    client: httpx.AsyncClient,
    resources: Resources,
    auth_headers: dict[str, str],
    other_auth_headers: dict[str, str],
) -> None:
    """The list and the single file follow one rule: what a caller may open, it may list."""
    await _upload(client, auth_headers, "a.txt")
    other_file = await _upload(client, other_auth_headers, "b.txt")
    admin = await login_as(client, resources, "admin")
    created = await client.post(
        f"{API}/rbac/roles",
        headers=admin,
        json={"name": "file-moderator", "permissions": ["files:moderate"]},
    )
    assert created.status_code == 201, created.text
    moderator = await register_user(client)
    await set_roles(resources, moderator["id"], "file-moderator")
    headers = await login(client, moderator["email"])

    opened = await client.get(f"{FILES}/{other_file['id']}", headers=headers)

    assert opened.status_code == 200, opened.text
    assert sorted(await _names(client, headers)) == ["a.txt", "b.txt"]


async def test_listing_needs_authentication(client: httpx.AsyncClient) -> None:
    error_of(await client.get(FILES), 401, "unauthorized")


async def test_sort_orders_and_filters(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    await _upload(client, auth_headers, "b.png", size=30, content_type="image/png")
    await _upload(client, auth_headers, "a.txt", size=20)
    await _upload(client, auth_headers, "c.txt", size=10)
    newest_first = await _names(client, auth_headers)

    assert newest_first == ["c.txt", "a.txt", "b.png"]
    assert await _names(client, auth_headers, sort="created_at") == newest_first[::-1]
    assert await _names(client, auth_headers, sort="original_name") == ["a.txt", "b.png", "c.txt"]
    assert await _names(client, auth_headers, sort="-size") == ["b.png", "a.txt", "c.txt"]
    # Types are stored lower-cased; the filter matches them whatever the case asked for.
    assert await _names(client, auth_headers, content_type="IMAGE/PNG") == ["b.png"]
    assert await _names(client, auth_headers, content_type="text/plain", sort="size") == [
        "c.txt",
        "a.txt",
    ]
    assert await _names(client, auth_headers, created_after="2000-01-01T00:00:00Z") == (
        newest_first
    )
    assert await _names(client, auth_headers, created_before="2000-01-01T00:00:00Z") == []


@pytest.mark.parametrize("sort", ["size", "-size", "original_name", "-created_at"])
async def test_cursor_pages_are_stable_while_files_arrive(
    client: httpx.AsyncClient, auth_headers: dict[str, str], sort: str
) -> None:
    # Equal sizes: the id breaks the ties, so the order is total and pages never overlap.
    for index, size in enumerate([10, 20, 20, 20, 30]):
        await _upload(client, auth_headers, f"{index}.txt", size=size)
    expected = [item["id"] for item in (await _page(client, auth_headers, sort=sort))["items"]]

    seen: list[str] = []
    params: dict[str, Any] = {"sort": sort, "limit": 2, "fields": "id"}
    first = await _page(client, auth_headers, **params)
    seen += [item["id"] for item in first["items"]]
    # A file uploaded meanwhile sorts before the cursor (newest, smallest, "+" < digits)
    # or after it; either way no page repeats or skips a file that was there before.
    arrived = await _upload(client, auth_headers, "+.txt", size=5)
    cursor = first["next_cursor"]
    while cursor is not None:
        page = await _page(client, auth_headers, cursor=cursor, **params)
        assert page["total"] is None
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]

    assert [file_id for file_id in seen if file_id != arrived["id"]] == expected
    assert len(seen) == len(set(seen))


async def test_offset_pages_count_and_cover_the_list(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    for index in range(5):
        await _upload(client, auth_headers, f"{index}.txt", size=index + 1)
    every = await _names(client, auth_headers, sort="size")

    pages = [
        await _page(client, auth_headers, sort="size", limit=2, offset=offset, fields="id")
        for offset in (0, 2, 4, 6)
    ]

    assert [page["total"] for page in pages] == [5, 5, 5, 5]
    assert [len(page["items"]) for page in pages] == [2, 2, 1, 0]
    assert every == [f"{index}.txt" for index in range(5)]


async def test_fields_select_the_properties_of_each_item(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    await _upload(client, auth_headers, "a.txt")

    page = await _page(client, auth_headers, fields="size, original_name")

    assert set(page) == {"items", "total", "limit", "offset", "next_cursor"}
    assert page["items"] == [{"original_name": "a.txt", "size": 10}]


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "key"},  # a column, but not a sort order the endpoint offers
        {"sort": "-checksum_sha256"},
        {"fields": "key"},  # the storage key is never part of a response
        {"fields": "id,download_url"},
        {"fields": ""},
        {"key": "abc"},
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"owner_id": "not-a-uuid"},
        {"content_type": ""},
        {"content_type": "text/\x00plain"},
        {"created_after": "yesterday"},
        {"created_before": "0.5"},
        {"cursor": "not a cursor"},
        {"cursor": "WyJzaXplIiwxLCJ4Il0", "sort": "size"},  # a forged id: ["size",1,"x"]
        {"cursor": "WyJzaXplIiwxLCJ4Il0", "sort": "-created_at"},  # another sort's cursor
    ],
)
async def test_bad_parameters_are_422_in_the_common_shape(
    client: httpx.AsyncClient, auth_headers: dict[str, str], params: dict[str, Any]
) -> None:
    response = await client.get(FILES, headers=auth_headers, params=params)

    error_of(response, 422)


async def test_cursor_and_offset_together_are_refused(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    for index in range(3):
        await _upload(client, auth_headers, f"{index}.txt")
    first = await _page(client, auth_headers, limit=1)

    params = {"limit": 1, "offset": 1, "cursor": first["next_cursor"]}
    response = await client.get(FILES, headers=auth_headers, params=params)

    error = error_of(response, 422, "invalid_cursor")
    assert "either `offset` or `cursor`" in error["message"]
