"""`GET /articles`: field selection, filters, sort orders and cursor pages."""

import base64
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.core.resources import Resources
from tests.helpers import API, create_article, error_of, get_page, recorded_queries

ARTICLES = f"{API}/articles"


async def _list(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    return await get_page(client, ARTICLES, headers, **params)


async def test_fields_returns_only_the_selected_fields(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    article = await create_article(client, auth_headers, "Picked")

    page = await _list(client, auth_headers, fields="title,author.id")
    whole_author = await _list(client, auth_headers, fields="id, author")

    assert page["items"] == [{"title": "Picked", "author": {"id": article["author_id"]}}]
    [item] = whole_author["items"]
    assert set(item) == {"id", "author"}
    assert set(item["author"]) == {"id", "full_name"}


async def test_unselected_relations_are_not_joined(
    client: httpx.AsyncClient, resources: Resources, auth_headers: dict[str, str]
) -> None:
    await create_article(client, auth_headers, "Alone")

    with recorded_queries(resources.engine) as without_author:
        await _list(client, auth_headers, fields="id,title")
    with recorded_queries(resources.engine) as with_author:
        await _list(client, auth_headers, fields="id,author.full_name")

    [listing] = [sql for sql in without_author if "FROM articles" in sql]
    assert "users" not in listing
    assert "content" not in listing
    assert any("JOIN users" in sql for sql in with_author)


@pytest.mark.parametrize("fields", ["title,secret", "content", "author.email", ","])
async def test_unknown_fields_are_refused_naming_the_allowed_ones(
    client: httpx.AsyncClient, auth_headers: dict[str, str], fields: str
) -> None:
    response = await client.get(ARTICLES, headers=auth_headers, params={"fields": fields})

    error = error_of(response, 422, "request_validation_error")
    assert error["details"][0]["loc"] == ["query", "fields"]
    if fields != ",":
        assert "choose from: id, title, status" in error["details"][0]["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "content"},
        {"sort": "-hashed_password"},
        {"status": "archived"},
        {"author_id": "someone"},
        {"created_after": "yesterday"},
        {"created_after": "2026-01-01T00:00:00"},  # no time zone: ambiguous
        {"order_by": "title"},  # not a parameter at all
        {"limit": 101},
    ],
)
async def test_anything_outside_the_allow_list_is_refused(
    client: httpx.AsyncClient, auth_headers: dict[str, str], params: dict[str, Any]
) -> None:
    response = await client.get(ARTICLES, headers=auth_headers, params=params)

    error_of(response, 422, "request_validation_error")


async def test_filters_by_status_author_and_dates(
    client: httpx.AsyncClient, auth_headers: dict[str, str], other_auth_headers: dict[str, str]
) -> None:
    draft = await create_article(client, auth_headers, "Mine, draft")
    mine = await create_article(client, auth_headers, "Mine, published", publish=True)
    theirs = await create_article(client, other_auth_headers, "Theirs", publish=True)

    published = await _list(client, auth_headers, status="published", fields="id")
    drafts = await _list(client, auth_headers, status="draft", fields="id")
    by_them = await _list(client, auth_headers, author_id=theirs["author_id"], fields="id")
    since_theirs = await _list(client, auth_headers, created_after=theirs["created_at"])
    before_theirs = await _list(client, auth_headers, created_before=theirs["created_at"])
    future = datetime(2999, 1, 1, tzinfo=UTC).isoformat()
    not_yet = await _list(client, auth_headers, published_after=future)
    published_before = await _list(client, auth_headers, published_before=future, fields="id")

    assert {item["id"] for item in published["items"]} == {mine["id"], theirs["id"]}
    assert published["total"] == 2
    assert [item["id"] for item in drafts["items"]] == [draft["id"]]
    assert [item["id"] for item in by_them["items"]] == [theirs["id"]]
    assert [item["id"] for item in since_theirs["items"]] == [theirs["id"]]
    assert {item["id"] for item in before_theirs["items"]} == {draft["id"], mine["id"]}
    assert not_yet["items"] == []
    assert not_yet["total"] == 0
    assert {item["id"] for item in published_before["items"]} == {mine["id"], theirs["id"]}


async def test_sort_orders(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    banana = await create_article(client, auth_headers, "Banana", publish=True)
    apple = await create_article(client, auth_headers, "Apple")
    cherry = await create_article(client, auth_headers, "Cherry", publish=True)

    async def order(sort: str) -> list[str]:
        page = await _list(client, auth_headers, sort=sort, fields="id")
        return [item["id"] for item in page["items"]]

    assert await order("-created_at") == [cherry["id"], apple["id"], banana["id"]]
    assert await order("created_at") == [banana["id"], apple["id"], cherry["id"]]
    # Unpublished articles come last in both directions.
    assert await order("published_at") == [banana["id"], cherry["id"], apple["id"]]
    assert await order("-published_at") == [cherry["id"], banana["id"], apple["id"]]
    assert await order("title") == [apple["id"], banana["id"], cherry["id"]]
    assert await order("-title") == [cherry["id"], banana["id"], apple["id"]]


@pytest.mark.parametrize("sort", ["-created_at", "title", "published_at", "-published_at"])
async def test_cursor_pages_visit_every_row_once(
    client: httpx.AsyncClient, auth_headers: dict[str, str], sort: str
) -> None:
    created = [
        await create_article(client, auth_headers, f"Article {n % 3}", publish=n % 2 == 0)
        for n in range(7)
    ]
    everything = await _list(client, auth_headers, sort=sort, limit=100, fields="id")

    seen: list[str] = []
    page = await _list(client, auth_headers, sort=sort, limit=3, fields="id")
    assert page["total"] == 7  # the first page, by offset, still counts
    while True:
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        page = await _list(
            client, auth_headers, sort=sort, limit=3, fields="id", cursor=page["next_cursor"]
        )
        assert page["total"] is None  # keyset pages skip the count

    assert seen == [item["id"] for item in everything["items"]]
    assert sorted(seen) == sorted(article["id"] for article in created)


async def test_cursor_pages_survive_new_rows(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    first_ids = [(await create_article(client, auth_headers, f"Old {n}"))["id"] for n in range(4)]
    first = await _list(client, auth_headers, limit=2, fields="id")

    await create_article(client, auth_headers, "Newer than the cursor")
    second = await _list(client, auth_headers, limit=2, fields="id", cursor=first["next_cursor"])

    # Offset paging would now repeat a row; the cursor continues where the page ended.
    assert [item["id"] for item in first["items"] + second["items"]] == first_ids[::-1]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"cursor": "not-a-cursor"}, "not one this endpoint issued"),
        ({"cursor": "WyItY3JlYXRlZF9hdCIsIngiLCJ5Il0"}, "not one this endpoint issued"),
        # JSON that is no cursor's shape: a three-letter string ("str"), a longer list
        ({"cursor": "InN0ciI"}, "not one this endpoint issued"),
        ({"cursor": "WyJ0aXRsZSIsMSwyLDNd"}, "not one this endpoint issued"),
        ({"cursor": "WzEsMiwzXQ"}, "not one this endpoint issued"),
    ],
)
async def test_bad_cursors_are_refused(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    params: dict[str, str],
    message: str,
) -> None:
    response = await client.get(ARTICLES, headers=auth_headers, params=params)

    assert message in error_of(response, 422, "invalid_cursor")["message"]


async def test_a_cursor_only_continues_its_own_sort_order(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    for n in range(3):
        await create_article(client, auth_headers, f"A{n}")
    by_title = await _list(client, auth_headers, sort="title", limit=1)

    mixed = await client.get(
        ARTICLES, headers=auth_headers, params={"cursor": by_title["next_cursor"]}
    )
    both = await client.get(
        ARTICLES,
        headers=auth_headers,
        params={"sort": "title", "cursor": by_title["next_cursor"], "offset": 1},
    )

    assert "keep the sort order" in error_of(mixed, 422, "invalid_cursor")["message"]
    assert "not both" in error_of(both, 422, "invalid_cursor")["message"]


async def test_a_list_refuses_a_parameter_it_does_not_know_and_other_routes_ignore_it(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    """docs/api-contract.md: a misspelt filter must not answer the whole list unfiltered;
    a cache-busting parameter on another route changes nothing."""
    await create_article(client, auth_headers, "Anyone's")

    misspelt = await client.get(ARTICLES, params={"autor_id": "x"}, headers=auth_headers)
    busted = await client.get(f"{API}/users/me", params={"_": "1700000000"}, headers=auth_headers)

    error = error_of(misspelt, 422, "request_validation_error")
    assert error["details"] == [
        {
            "loc": ["query", "autor_id"],
            "message": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        }
    ]
    assert busted.status_code == 200


def _forged(sort: str, value: object) -> str:
    raw = json.dumps([sort, value, "00000000-0000-4000-8000-000000000000"]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort", "value"),
    [
        ("created_at", None),  # never NULL: no page of it ends on one
        ("-created_at", None),
        ("title", None),
        ("created_at", 12345),  # a number where a date-time was issued
        ("title", True),  # another JSON type than the one issued
    ],
)
async def test_a_forged_cursor_value_is_refused_not_answered_with_an_empty_page(
    client: httpx.AsyncClient, auth_headers: dict[str, str], sort: str, value: object
) -> None:
    await create_article(client, auth_headers, "Present")

    response = await client.get(
        ARTICLES, headers=auth_headers, params={"sort": sort, "cursor": _forged(sort, value)}
    )

    error_of(response, 422, "invalid_cursor")


async def test_a_cursor_may_end_on_null_where_the_column_may_hold_one(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    await create_article(client, auth_headers, "Draft")  # published_at is NULL

    response = await client.get(
        ARTICLES,
        headers=auth_headers,
        params={"sort": "published_at", "cursor": _forged("published_at", None)},
    )

    assert response.status_code == 200, response.text
