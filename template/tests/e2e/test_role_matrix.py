"""What each default role may do: one row per endpoint, one column per role.

Article rows act on articles of another user (the owner), so they show both the
permission a route needs and the ownership rules behind it: someone else's draft is
404 for whoever may not see it, a visible article they may not change is 403.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from app.core.resources import Resources
from app.models import Article, ArticleStatus, User
from app.models.base import utcnow
from tests.helpers import API, create_user, login_as, role_id, unique_email

ROLES = ["admin", "editor", "author", "viewer", "anonymous"]


@dataclass(frozen=True)
class World:
    """Someone else's published article and draft, and another user to administer."""

    published_id: str
    draft_id: str
    user_id: str
    viewer_role_id: str


Call = Callable[[httpx.AsyncClient, dict[str, str], World], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Row:
    name: str
    call: Call
    # Expected status for admin, editor, author, viewer, anonymous.
    expected: tuple[int, int, int, int, int]


ROWS = [
    Row(
        "read own profile",
        lambda c, h, w: c.get(f"{API}/users/me", headers=h),
        (200, 200, 200, 200, 401),
    ),
    Row(
        "list articles",
        lambda c, h, w: c.get(f"{API}/articles", headers=h),
        (200, 200, 200, 200, 401),
    ),
    Row(
        "create article",
        lambda c, h, w: c.post(f"{API}/articles", headers=h, json={"title": "T", "content": "C"}),
        (201, 201, 201, 403, 401),
    ),
    Row(
        "read published",
        lambda c, h, w: c.get(f"{API}/articles/{w.published_id}", headers=h),
        (200, 200, 200, 200, 401),
    ),
    Row(
        "read other's draft",
        lambda c, h, w: c.get(f"{API}/articles/{w.draft_id}", headers=h),
        (200, 200, 404, 404, 401),
    ),
    Row(
        "edit other's published",
        lambda c, h, w: c.patch(f"{API}/articles/{w.published_id}", headers=h, json={"title": "X"}),
        (200, 200, 403, 403, 401),
    ),
    Row(
        "delete other's published",
        lambda c, h, w: c.delete(f"{API}/articles/{w.published_id}", headers=h),
        (204, 204, 403, 403, 401),
    ),
    Row(
        "publish other's draft",
        lambda c, h, w: c.post(f"{API}/articles/{w.draft_id}/publish", headers=h),
        (200, 200, 404, 403, 401),
    ),
    Row("list users", lambda c, h, w: c.get(f"{API}/users", headers=h), (200, 200, 403, 403, 401)),
    Row(
        "deactivate a user",
        lambda c, h, w: c.post(f"{API}/users/{w.user_id}/deactivate", headers=h),
        (200, 403, 403, 403, 401),
    ),
    Row(
        "give a user a role",
        lambda c, h, w: c.put(f"{API}/users/{w.user_id}/roles/{w.viewer_role_id}", headers=h),
        (200, 403, 403, 403, 401),
    ),
    Row(
        "list roles",
        lambda c, h, w: c.get(f"{API}/rbac/roles", headers=h),
        (200, 403, 403, 403, 401),
    ),
    Row(
        "list permissions",
        lambda c, h, w: c.get(f"{API}/rbac/permissions", headers=h),
        (200, 403, 403, 403, 401),
    ),
    Row(
        "create a role",
        lambda c, h, w: c.post(f"{API}/rbac/roles", headers=h, json={"name": "reviewer"}),
        (201, 403, 403, 403, 401),
    ),
    Row(
        "grant a permission",
        lambda c, h, w: c.put(
            f"{API}/rbac/roles/{w.viewer_role_id}/permissions/articles:write", headers=h
        ),
        (200, 403, 403, 403, 401),
    ),
]


async def _world(resources: Resources, owner_id: uuid.UUID, viewer_role_id: str) -> World:
    """A fresh world for each row (one commit), so rows that change things stay independent."""
    published = Article(
        title="Public",
        content="Body",
        author_id=owner_id,
        status=ArticleStatus.PUBLISHED,
        published_at=utcnow(),
    )
    draft = Article(title="Draft", content="Body", author_id=owner_id)
    other = User(email=unique_email("other"), hashed_password="never-logs-in")
    async with resources.session_factory() as db:
        db.add_all([published, draft, other])
        await db.commit()
    return World(str(published.id), str(draft.id), str(other.id), viewer_role_id)


@pytest.mark.parametrize("role", ROLES)
async def test_role_matrix(client: httpx.AsyncClient, resources: Resources, role: str) -> None:
    headers = {} if role == "anonymous" else await login_as(client, resources, role)
    async with resources.session_factory() as db:
        owner = await create_user(db, resources.password_hasher)
    viewer_role_id = await role_id(resources, "viewer")
    column = ROLES.index(role)

    wrong = []
    for row in ROWS:
        world = await _world(resources, owner.id, viewer_role_id)
        response = await row.call(client, headers, world)
        if response.status_code != row.expected[column]:
            wrong.append(f"{row.name}: {response.status_code}, expected {row.expected[column]}")

    assert wrong == [], f"{role} got unexpected answers"
