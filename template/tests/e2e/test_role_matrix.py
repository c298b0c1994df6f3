"""What each default role may do: one row per endpoint, one column per role.

Article rows act on articles of another user (the owner), so they show both the
permission a route needs and the ownership rules behind it: someone else's draft is
404 for whoever may not see it, a visible article they may not change is 403.

Rows that change something also check the change in the database: made when the
answer is a success, not made otherwise (a 200 that did nothing, or a 403 after the
write, both fail).
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.core.resources import Resources
from app.models import Article, ArticleStatus, Role, User
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
# Whether the row's change is in the database.
Effect = Callable[[AsyncSession, World], Awaitable[bool]]


@dataclass(frozen=True)
class Row:
    name: str
    call: Call
    # Expected status for admin, editor, author, viewer, anonymous.
    expected: tuple[int, int, int, int, int]
    effect: Effect | None = None


async def _article(db: AsyncSession, article_id: str) -> Article | None:
    return await db.get(Article, uuid.UUID(article_id))


async def _created(db: AsyncSession, _: World) -> bool:
    return await db.scalar(select(func.count()).where(Article.title == "T")) == 1


async def _edited(db: AsyncSession, world: World) -> bool:
    article = await _article(db, world.published_id)
    return article is not None and article.title == "X"


async def _deleted(db: AsyncSession, world: World) -> bool:
    return await _article(db, world.published_id) is None


async def _published(db: AsyncSession, world: World) -> bool:
    article = await _article(db, world.draft_id)
    return article is not None and article.status == ArticleStatus.PUBLISHED


async def _deactivated(db: AsyncSession, world: World) -> bool:
    return (
        await db.scalar(select(User.is_active).where(User.id == uuid.UUID(world.user_id))) is False
    )


async def _given_role(db: AsyncSession, world: World) -> bool:
    user = await db.scalar(
        select(User).where(User.id == uuid.UUID(world.user_id)).options(selectinload(User.roles))
    )
    return user is not None and any(str(role.id) == world.viewer_role_id for role in user.roles)


async def _role_created(db: AsyncSession, _: World) -> bool:
    return await db.scalar(select(func.count()).where(Role.name == "reviewer")) == 1


async def _granted(db: AsyncSession, world: World) -> bool:
    role = await db.scalar(
        select(Role)
        .where(Role.id == uuid.UUID(world.viewer_role_id))
        .options(selectinload(Role.permissions))
    )
    return role is not None and "articles:write" in {p.name for p in role.permissions}


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
        _created,
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
        _edited,
    ),
    Row(
        "delete other's published",
        lambda c, h, w: c.delete(f"{API}/articles/{w.published_id}", headers=h),
        (204, 204, 403, 403, 401),
        _deleted,
    ),
    Row(
        "publish other's draft",
        lambda c, h, w: c.post(f"{API}/articles/{w.draft_id}/publish", headers=h),
        (200, 200, 404, 403, 401),
        _published,
    ),
    Row("list users", lambda c, h, w: c.get(f"{API}/users", headers=h), (200, 200, 403, 403, 401)),
    Row(
        "deactivate a user",
        lambda c, h, w: c.post(f"{API}/users/{w.user_id}/deactivate", headers=h),
        (200, 403, 403, 403, 401),
        _deactivated,
    ),
    Row(
        "give a user a role",
        lambda c, h, w: c.put(f"{API}/users/{w.user_id}/roles/{w.viewer_role_id}", headers=h),
        (200, 403, 403, 403, 401),
        _given_role,
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
        _role_created,
    ),
    Row(
        "grant a permission",
        lambda c, h, w: c.put(
            f"{API}/rbac/roles/{w.viewer_role_id}/permissions/articles:write", headers=h
        ),
        (200, 403, 403, 403, 401),
        _granted,
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
        if row.effect is not None:
            async with resources.session_factory() as db:
                changed = await row.effect(db, world)
            if changed != response.is_success:
                wrong.append(f"{row.name}: answered {response.status_code}, changed: {changed}")

    assert wrong == [], f"{role} got unexpected answers"
