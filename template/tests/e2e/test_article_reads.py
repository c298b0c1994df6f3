"""`GET /articles/{id}`: cached reads that a write invalidates at once, ETags, fields."""

import httpx
import pytest

from app.core.cache import RedisCache
from app.core.resources import Resources
from tests.helpers import API, AppFactory, create_article, error_of, recorded_queries

ARTICLES = f"{API}/articles"


async def test_repeated_reads_come_from_the_cache(
    client: httpx.AsyncClient, resources: Resources, auth_headers: dict[str, str]
) -> None:
    article = await create_article(client, auth_headers, "T", content="x")
    url = f"{ARTICLES}/{article['id']}"

    with recorded_queries(resources.engine) as first_read:
        first = await client.get(url, headers=auth_headers)
    with recorded_queries(resources.engine) as second_read:
        second = await client.get(url, headers=auth_headers)

    assert first.json() == second.json()
    assert any("FROM articles" in sql for sql in first_read)
    assert second_read == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("update", {"title": "Changed"}),
        ("publish", {"status": "published"}),
        ("delete", None),
    ],
)
async def test_a_write_is_visible_to_the_next_read(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    change: str,
    expected: dict[str, str] | None,
) -> None:
    article = await create_article(client, auth_headers, "T", content="x")
    url = f"{ARTICLES}/{article['id']}"
    assert (await client.get(url, headers=auth_headers)).json()["status"] == "draft"  # cached

    if change == "update":
        await client.patch(url, headers=auth_headers, json={"title": "Changed"})
    elif change == "publish":
        await client.post(f"{url}/publish", headers=auth_headers)
    else:
        await client.delete(url, headers=auth_headers)
    after = await client.get(url, headers=auth_headers)

    if expected is None:
        error_of(after, 404, "not_found")
    else:
        assert expected.items() <= after.json().items()


async def test_a_renamed_author_shows_in_cached_articles(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    article = await create_article(client, auth_headers, "T", content="x")
    url = f"{ARTICLES}/{article['id']}"
    await client.get(url, headers=auth_headers)

    await client.patch(f"{API}/users/me", headers=auth_headers, json={"full_name": "New Name"})

    assert (await client.get(url, headers=auth_headers)).json()["author"]["full_name"] == (
        "New Name"
    )


async def test_cached_drafts_stay_private(
    client: httpx.AsyncClient, auth_headers: dict[str, str], other_auth_headers: dict[str, str]
) -> None:
    article = await create_article(client, auth_headers, "T", content="x")
    url = f"{ARTICLES}/{article['id']}"
    assert (await client.get(url, headers=auth_headers)).status_code == 200  # now cached

    error_of(await client.get(url, headers=other_auth_headers), 404, "not_found")


async def test_no_instance_serves_a_stale_read_after_a_write(
    client: httpx.AsyncClient,
    resources: Resources,
    auth_headers: dict[str, str],
    app_factory: AppFactory,
) -> None:
    if not isinstance(resources.cache, RedisCache):
        pytest.skip(
            "instances share state only through Redis (the in-process cache is per process)"
        )
    article = await create_article(client, auth_headers, "T", content="x")
    url = f"{ARTICLES}/{article['id']}"
    async with app_factory() as other_instance:
        assert (await other_instance.get(url, headers=auth_headers)).json()["title"] == "T"

        await client.patch(url, headers=auth_headers, json={"title": "Changed"})

        assert (await other_instance.get(url, headers=auth_headers)).json()["title"] == "Changed"


async def test_etag_answers_304_until_the_article_changes(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    article = await create_article(client, auth_headers, "T", content="x")
    url = f"{ARTICLES}/{article['id']}"
    first = await client.get(url, headers=auth_headers)
    etag = first.headers["etag"]

    unchanged = await client.get(url, headers={**auth_headers, "If-None-Match": etag})
    weak = await client.get(url, headers={**auth_headers, "If-None-Match": f'W/{etag}, "x"'})
    await client.patch(url, headers=auth_headers, json={"title": "Changed"})
    changed = await client.get(url, headers={**auth_headers, "If-None-Match": etag})

    assert first.status_code == 200
    assert first.headers["cache-control"] == "private, no-cache"
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    assert unchanged.headers["etag"] == etag
    assert weak.status_code == 304
    assert changed.status_code == 200
    assert changed.json()["title"] == "Changed"
    assert changed.headers["etag"] != etag


async def test_detail_fields_selection(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    article = await create_article(client, auth_headers, "T", content="x")
    url = f"{ARTICLES}/{article['id']}"

    picked = await client.get(url, headers=auth_headers, params={"fields": "content,author.id"})
    unknown = await client.get(url, headers=auth_headers, params={"fields": "password"})

    assert set(picked.json()) == {"content", "author"}
    assert set(picked.json()["author"]) == {"id"}
    assert "choose from" in error_of(unknown, 422)["details"][0]["message"]


async def test_cached_list_pages_follow_every_write(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    async def titles() -> list[tuple[str, str]]:
        page = (await client.get(ARTICLES, headers=auth_headers)).json()
        return [(item["title"], item["status"]) for item in page["items"]]

    article = await create_article(client, auth_headers, "T", content="x")
    url = f"{ARTICLES}/{article['id']}"
    assert await titles() == [("T", "draft")]  # cached from here on

    await create_article(client, auth_headers, "T", content="x")
    assert await titles() == [("T", "draft"), ("T", "draft")]
    await client.patch(url, headers=auth_headers, json={"title": "Changed"})
    assert ("Changed", "draft") in await titles()
    await client.post(f"{url}/publish", headers=auth_headers)
    assert ("Changed", "published") in await titles()
    await client.delete(url, headers=auth_headers)
    assert await titles() == [("T", "draft")]


async def test_cached_list_pages_show_a_new_author_name(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    await create_article(client, auth_headers, "T", content="x")
    await client.get(ARTICLES, headers=auth_headers)

    await client.patch(f"{API}/users/me", headers=auth_headers, json={"full_name": "Renamed"})

    [item] = (await client.get(ARTICLES, headers=auth_headers)).json()["items"]
    assert item["author"]["full_name"] == "Renamed"


async def test_list_pages_are_cached_per_audience(
    client: httpx.AsyncClient, auth_headers: dict[str, str], other_auth_headers: dict[str, str]
) -> None:
    await create_article(client, auth_headers, "T", content="x")
    assert (await client.get(ARTICLES, headers=auth_headers)).json()["total"] == 1

    # Same query, other reader: someone else's draft stays out of their page.
    assert (await client.get(ARTICLES, headers=other_auth_headers)).json()["total"] == 0


async def test_no_instance_serves_a_stale_list_after_a_write(
    client: httpx.AsyncClient,
    resources: Resources,
    auth_headers: dict[str, str],
    app_factory: AppFactory,
) -> None:
    if not isinstance(resources.cache, RedisCache):
        pytest.skip(
            "instances share state only through Redis (the in-process cache is per process)"
        )
    await create_article(client, auth_headers, "T", content="x")
    async with app_factory() as other_instance:
        assert (await other_instance.get(ARTICLES, headers=auth_headers)).json()["total"] == 1

        await create_article(client, auth_headers, "T", content="x")

        assert (await other_instance.get(ARTICLES, headers=auth_headers)).json()["total"] == 2


async def test_list_etag_answers_304_until_a_write(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    await create_article(client, auth_headers, "T", content="x")
    etag = (await client.get(ARTICLES, headers=auth_headers)).headers["etag"]
    conditional = {**auth_headers, "If-None-Match": etag}

    unchanged = await client.get(ARTICLES, headers=conditional)
    await create_article(client, auth_headers, "T", content="x")
    changed = await client.get(ARTICLES, headers=conditional)

    assert unchanged.status_code == 304
    assert changed.status_code == 200
    assert changed.json()["total"] == 2
