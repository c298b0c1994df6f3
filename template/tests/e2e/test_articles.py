import httpx
import pytest

from tests.helpers import API, create_article, error_of

ARTICLES = f"{API}/articles"


async def test_create_returns_a_draft(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    article = await create_article(client, auth_headers)

    assert article["status"] == "draft"
    assert article["published_at"] is None
    assert article["title"] == "Hello"
    assert article["author"]["id"] == article["author_id"]


async def test_articles_require_authentication(client: httpx.AsyncClient) -> None:
    response = await client.get(ARTICLES)

    error_of(response, 401, "unauthorized")


async def test_list_is_a_paginated_envelope(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    for _ in range(3):
        await create_article(client, auth_headers)

    first = await client.get(ARTICLES, headers=auth_headers, params={"limit": 2})
    second = await client.get(ARTICLES, headers=auth_headers, params={"limit": 2, "offset": 2})

    assert first.status_code == second.status_code == 200
    assert set(first.json()) == {"items", "total", "limit", "offset", "next_cursor"}
    assert (first.json()["total"], first.json()["limit"], first.json()["offset"]) == (
        3,
        2,
        0,
    )
    assert len(first.json()["items"]) == 2
    assert len(second.json()["items"]) == 1
    default = await client.get(ARTICLES, headers=auth_headers)
    assert (default.json()["limit"], default.json()["offset"]) == (20, 0)


@pytest.mark.parametrize("params", [{"limit": 101}, {"limit": 0}, {"offset": -1}])
async def test_list_refuses_out_of_range_pagination(
    client: httpx.AsyncClient, auth_headers: dict[str, str], params: dict[str, int]
) -> None:
    response = await client.get(ARTICLES, headers=auth_headers, params=params)

    error = error_of(response, 422, "request_validation_error")
    assert error["details"][0]["loc"][0] == "query"


async def test_get_patch_and_delete_own_article(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    article = await create_article(client, auth_headers)
    url = f"{ARTICLES}/{article['id']}"

    fetched = await client.get(url, headers=auth_headers)
    assert fetched.status_code == 200
    assert fetched.json()["id"] == article["id"]

    patched = await client.patch(url, headers=auth_headers, json={"title": "Changed"})
    assert patched.status_code == 200
    assert (patched.json()["title"], patched.json()["content"]) == ("Changed", "Body")

    deleted = await client.delete(url, headers=auth_headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    error_of(await client.get(url, headers=auth_headers), 404, "not_found")


@pytest.mark.parametrize("payload", [{"title": None}, {"title": ""}, {"author_id": "x"}])
async def test_patch_refuses_invalid_changes(
    client: httpx.AsyncClient, auth_headers: dict[str, str], payload: dict[str, object]
) -> None:
    article = await create_article(client, auth_headers)

    response = await client.patch(f"{ARTICLES}/{article['id']}", headers=auth_headers, json=payload)

    error_of(response, 422, "request_validation_error")
    unchanged = await client.get(f"{ARTICLES}/{article['id']}", headers=auth_headers)
    assert unchanged.json()["title"] == "Hello"


async def test_publish_requires_content(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    article = await create_article(client, auth_headers, content=None)

    response = await client.post(f"{ARTICLES}/{article['id']}/publish", headers=auth_headers)

    error_of(response, 422, "validation_error")


async def test_publish_flow_and_visibility(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    other_auth_headers: dict[str, str],
) -> None:
    article = await create_article(client, auth_headers)
    url = f"{ARTICLES}/{article['id']}"

    error_of(await client.get(url, headers=other_auth_headers), 404, "not_found")
    error_of(
        await client.post(f"{url}/publish", headers=other_auth_headers),
        404,
        "not_found",
    )
    listed = await client.get(ARTICLES, headers=other_auth_headers)
    assert listed.json()["total"] == 0

    published = await client.post(f"{url}/publish", headers=auth_headers)
    assert published.status_code == 200
    assert published.json()["status"] == "published"
    assert published.json()["published_at"] is not None

    assert (await client.get(url, headers=other_auth_headers)).status_code == 200
    listed = await client.get(ARTICLES, headers=other_auth_headers)
    assert [item["id"] for item in listed.json()["items"]] == [article["id"]]
    error_of(
        await client.post(f"{url}/publish", headers=other_auth_headers),
        403,
        "forbidden",
    )
    error_of(await client.patch(url, headers=other_auth_headers, json={"title": "X"}), 403)
    error_of(await client.delete(url, headers=other_auth_headers), 403, "forbidden")
    error_of(
        await client.post(f"{url}/publish", headers=auth_headers),
        422,
        "validation_error",
    )


async def test_unknown_and_malformed_article_ids(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    missing = await client.get(
        f"{ARTICLES}/00000000-0000-4000-8000-000000000000", headers=auth_headers
    )
    malformed = await client.get(f"{ARTICLES}/not-a-uuid", headers=auth_headers)

    error_of(missing, 404, "not_found")
    error_of(malformed, 422, "request_validation_error")
