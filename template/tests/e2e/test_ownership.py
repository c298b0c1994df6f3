"""Ownership of articles: a draft is hidden (404) from everyone but its author and
editors, so guessing ids reveals nothing; a published article is visible to all readers
and changed only by its author or an editor (403 for the rest). Editors do it with
`articles:moderate`, not with a `feature:admin` permission (issue #17)."""

import httpx

from app.core.resources import Resources
from tests.helpers import API, create_article, error_of, login_as

ARTICLES = f"{API}/articles"


async def test_another_author_cannot_find_read_change_or_delete_a_draft(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    alice = await login_as(client, resources, "author")
    bob = await login_as(client, resources, "author")
    draft = await create_article(client, alice, "A")
    url = f"{ARTICLES}/{draft['id']}"

    answers = [
        await client.get(url, headers=bob),
        await client.patch(url, headers=bob, json={"title": "Mine now"}),
        await client.delete(url, headers=bob),
        await client.post(f"{url}/publish", headers=bob),
    ]

    for answer in answers:
        assert error_of(answer, 404, "not_found")["message"] == "Article not found"
    assert (await client.get(ARTICLES, headers=bob)).json()["total"] == 0
    unchanged = (await client.get(url, headers=alice)).json()
    assert (unchanged["title"], unchanged["status"]) == ("A", "draft")


async def test_a_published_article_is_visible_but_not_changeable_by_others(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    alice = await login_as(client, resources, "author")
    bob = await login_as(client, resources, "author")
    article = await create_article(client, alice, "A")
    url = f"{ARTICLES}/{article['id']}"
    await client.post(f"{url}/publish", headers=alice)

    assert (await client.get(url, headers=bob)).status_code == 200
    error_of(await client.patch(url, headers=bob, json={"title": "X"}), 403, "forbidden")
    error_of(await client.delete(url, headers=bob), 403, "forbidden")
    assert (await client.get(url, headers=alice)).json()["title"] == "A"


async def test_editors_see_every_draft_and_may_change_any_article(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    alice = await login_as(client, resources, "author")
    editor = await login_as(client, resources, "editor")
    draft = await create_article(client, alice, "A")
    other_draft = await create_article(client, alice, "B")
    url, other_url = f"{ARTICLES}/{draft['id']}", f"{ARTICLES}/{other_draft['id']}"
    held = (await client.get(f"{API}/users/me", headers=editor)).json()["permissions"]
    assert "articles:moderate" in held
    assert [name for name in held if name.endswith(":admin")] == []

    read = await client.get(url, headers=editor)
    listed = await client.get(f"{ARTICLES}?sort=title", headers=editor)
    edited = await client.patch(url, headers=editor, json={"title": "Edited"})
    published = await client.post(f"{url}/publish", headers=editor)
    deleted = await client.delete(other_url, headers=editor)

    assert read.json()["status"] == "draft"
    assert [item["id"] for item in listed.json()["items"]] == [draft["id"], other_draft["id"]]
    assert edited.json()["title"] == "Edited"
    assert edited.json()["author_id"] == draft["author_id"]
    assert published.json()["status"] == "published"
    assert deleted.status_code == 204
    error_of(await client.get(other_url, headers=alice), 404, "not_found")
    assert (await client.delete(url, headers=editor)).status_code == 204
