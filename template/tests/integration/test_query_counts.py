"""Lists cost a constant number of SQL statements, whatever the page size (no N+1)."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from app.core.resources import Resources
from tests.helpers import API, create_article, login, register_user, unique_email


@contextmanager
def counted_statements(resources: Resources) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])  # (conn, cursor, statement, parameters, context, many)

    engine = resources.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_article_list_statements_do_not_grow_with_the_page(
    client: httpx.AsyncClient, resources: Resources, auth_headers: dict[str, str]
) -> None:
    """Thirty published articles by six authors, interleaved: a page that loaded each
    article's author on its own would cost a statement per distinct author."""
    authors = []
    for number in range(6):
        user = await register_user(
            client, email=unique_email(f"author{number}"), full_name=f"Author {number}"
        )
        authors.append((user["full_name"], await login(client, user["email"])))
    written_by = {}
    for number in range(30):
        full_name, headers = authors[number % len(authors)]
        await create_article(client, headers, f"A{number}", content="x", publish=True)
        written_by[f"A{number}"] = full_name
    # The reader's own snapshot (two statements) is built once, before counting.
    assert (await client.get(f"{API}/users/me", headers=auth_headers)).status_code == 200

    counts = {}
    for limit in (1, 10, 30):
        with counted_statements(resources) as statements:
            response = await client.get(
                f"{API}/articles", headers=auth_headers, params={"limit": limit}
            )
        assert response.status_code == 200
        items = response.json()["items"]
        assert len(items) == limit
        assert response.json()["total"] == 30
        assert all(item["author"]["full_name"] == written_by[item["title"]] for item in items)
        counts[limit] = len(statements)

    assert counts[1] == counts[10] == counts[30], counts
    assert counts[30] <= 2, counts  # the page with its total; the principal comes from cache


async def test_list_items_leave_out_the_content(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    await client.post(f"{API}/articles", headers=auth_headers, json={"title": "T", "content": "x"})

    [item] = (await client.get(f"{API}/articles", headers=auth_headers)).json()["items"]

    assert "content" not in item
    assert set(item["author"]) == {"id", "full_name"}
