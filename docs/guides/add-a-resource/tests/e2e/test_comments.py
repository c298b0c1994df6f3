"""Comments: readers discuss published articles, authors change their own comments,
editors moderate everyone's, and a draft's comments stay as hidden as the draft."""

from typing import Any

import httpx
from sqlalchemy import func, select

from app.core.resources import Resources
from app.models import Comment
from tests.helpers import API, create_article, error_of, login_as

ARTICLES = f"{API}/articles"
COMMENTS = f"{API}/comments"


async def _article(
    client: httpx.AsyncClient, headers: dict[str, str], *, publish: bool = True
) -> str:
    article = await create_article(client, headers, "T", content="C", publish=publish)
    article_id: str = article["id"]
    return article_id


async def _comment(
    client: httpx.AsyncClient, headers: dict[str, str], article_id: str, body: str = "Nice"
) -> dict[str, Any]:
    response = await client.post(
        f"{ARTICLES}/{article_id}/comments", headers=headers, json={"body": body}
    )
    assert response.status_code == 201, response.text
    comment: dict[str, Any] = response.json()
    return comment


async def test_readers_see_the_thread_oldest_first_and_only_commenters_write(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    alice = await login_as(client, resources, "author")
    bob = await login_as(client, resources, "author")
    viewer = await login_as(client, resources, "viewer")
    article_id = await _article(client, alice)
    first = await _comment(client, bob, article_id, "First!")
    second = await _comment(client, alice, article_id, "  Thanks, Bob.  ")

    thread = await client.get(f"{ARTICLES}/{article_id}/comments", headers=viewer)

    assert thread.status_code == 200, thread.text
    assert thread.json()["total"] == 2
    assert [item["id"] for item in thread.json()["items"]] == [first["id"], second["id"]]
    assert second["body"] == "Thanks, Bob."  # surrounding whitespace is dropped
    assert first["author"]["id"] == first["author_id"]
    assert first["article_id"] == article_id
    response = await client.post(
        f"{ARTICLES}/{article_id}/comments", headers=viewer, json={"body": "Me too"}
    )
    assert "comments:write" in error_of(response, 403, "forbidden")["message"]


async def test_comments_open_once_the_article_is_published(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    alice = await login_as(client, resources, "author")
    bob = await login_as(client, resources, "author")
    draft_id = await _article(client, alice, publish=False)
    url = f"{ARTICLES}/{draft_id}/comments"

    own_draft = await client.post(url, headers=alice, json={"body": "Note to self"})
    error_of(own_draft, 422, "validation_error")
    # Someone else's draft is hidden, its comments included.
    error_of(await client.get(url, headers=bob), 404, "not_found")
    error_of(await client.post(url, headers=bob, json={"body": "Hi"}), 404, "not_found")


async def test_a_blank_comment_or_one_the_database_cannot_store_is_refused(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    alice = await login_as(client, resources, "author")
    article_id = await _article(client, alice)
    url = f"{ARTICLES}/{article_id}/comments"

    blank = await client.post(url, headers=alice, json={"body": "   "})
    nul = await client.post(url, headers=alice, json={"body": "a\u0000b"})

    error_of(blank, 422, "request_validation_error")
    # RequestModel refuses it before PostgreSQL would (it cannot store U+0000 in text).
    assert "NUL" in str(error_of(nul, 422, "request_validation_error")["details"])


async def test_only_its_author_or_a_moderator_changes_a_comment(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    alice = await login_as(client, resources, "author")
    bob = await login_as(client, resources, "author")
    editor = await login_as(client, resources, "editor")
    article_id = await _article(client, alice)
    comment = await _comment(client, bob, article_id)
    url = f"{COMMENTS}/{comment['id']}"

    # The article's author does not own the discussion.
    error_of(await client.patch(url, headers=alice, json={"body": "Rude"}), 403, "forbidden")
    error_of(await client.delete(url, headers=alice), 403, "forbidden")
    edited = await client.patch(url, headers=bob, json={"body": "Nice, edited"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["body"] == "Nice, edited"
    assert (await client.delete(url, headers=editor)).status_code == 204

    thread = await client.get(f"{ARTICLES}/{article_id}/comments", headers=alice)
    assert thread.json()["total"] == 0
    error_of(await client.delete(url, headers=bob), 404, "not_found")


async def test_deleting_an_article_deletes_its_comments(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    alice = await login_as(client, resources, "author")
    article_id = await _article(client, alice)
    await _comment(client, alice, article_id)

    assert (await client.delete(f"{ARTICLES}/{article_id}", headers=alice)).status_code == 204

    async with resources.session_factory() as db:
        assert await db.scalar(select(func.count()).select_from(Comment)) == 0
