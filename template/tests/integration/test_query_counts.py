"""Lists cost a constant number of SQL statements, whatever the page size (no N+1)."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from app.core.resources import Resources
from tests.helpers import API


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
    for number in range(30):
        created = await client.post(
            f"{API}/articles", headers=auth_headers, json={"title": f"A{number}", "content": "x"}
        )
        assert created.status_code == 201

    counts = {}
    for limit in (1, 10, 30):
        with counted_statements(resources) as statements:
            response = await client.get(
                f"{API}/articles", headers=auth_headers, params={"limit": limit}
            )
        assert response.status_code == 200
        assert len(response.json()["items"]) == limit
        assert response.json()["total"] == 30
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
