"""Articles and who may see and change them.

Drafts are private: visible only to their author and to holders of `articles:moderate`
(editors; `articles:admin` implies it). Anyone else asking for a draft gets 404, exactly
as for an id that does not exist, so guessing ids reveals nothing about other people's
drafts. A published article is visible to every reader; changing, deleting or
publishing it is for its author or an `articles:moderate` holder, and others get 403
(they can see it, so there is nothing to hide).
"""

import uuid

import pydantic_core
from sqlalchemy import ColumnElement, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from app.core.cache import Cache
from app.core.entity_tags import entity_tag, match
from app.core.read_cache import ReadCache
from app.core.replicas import read_source
from app.exceptions import (
    ForbiddenException,
    NotFoundException,
    PreconditionFailedException,
    ValidationException,
)
from app.models.article import Article, ArticleStatus
from app.models.base import utcnow
from app.models.user import User
from app.schemas.article import ArticleCreate, ArticleListQuery, ArticleResponse, ArticleUpdate
from app.services.authorization import has_permission
from app.services.crud_service import CRUDService
from app.services.listing import Join, Listing
from app.services.principal import Principal

# Responses embed the author: load it in the same query, never lazily.
WITH_AUTHOR = (joinedload(Article.author),)

ARTICLE_LISTING = Listing(
    query=ArticleListQuery,
    id_column=Article.id,
    columns={
        "id": Article.id,
        "title": Article.title,
        "status": Article.status,
        "published_at": Article.published_at,
        "author_id": Article.author_id,
        "author.id": User.id,
        "author.full_name": User.full_name,
        "created_at": Article.created_at,
        "updated_at": Article.updated_at,
    },
    joins={"author": Join(User, User.id == Article.author_id)},
    sorts={
        "created_at": Article.created_at,
        "published_at": Article.published_at,
        "title": Article.title,
    },
    filters={
        "status": lambda status: Article.status == status,
        "author_id": lambda author_id: Article.author_id == author_id,
        "created_after": lambda moment: Article.created_at >= moment,
        "created_before": lambda moment: Article.created_at < moment,
        "published_after": lambda moment: Article.published_at >= moment,
        "published_before": lambda moment: Article.published_at < moment,
    },
)

# Reads are served from the cache: single articles, and list pages per audience (a
# moderator sees every draft, anyone else their own). Every write below invalidates the
# article it changed and every list page; a user's new name invalidates everything,
# since articles embed their author's.
ARTICLE_READS_TTL_SECONDS = 300
ARTICLE_LISTS_TTL_SECONDS = 60


def article_reads(cache: Cache) -> ReadCache:
    return ReadCache(cache, "articles", ttl_seconds=ARTICLE_READS_TTL_SECONDS)


def article_lists(cache: Cache) -> ReadCache:
    return ReadCache(cache, "article-lists", ttl_seconds=ARTICLE_LISTS_TTL_SECONDS)


async def forget_cached_articles(cache: Cache) -> None:
    """Invalidate every cached article read (for writes outside this service)."""
    await article_reads(cache).invalidate_all()
    await article_lists(cache).invalidate_all()


def representation(article: Article) -> bytes:
    """The article as `GET /articles/{id}` sends it (all fields): what its `ETag` tags."""
    return ArticleResponse.model_validate(article).model_dump_json().encode()


def _is_own_or_moderated(author_id: uuid.UUID, principal: Principal) -> bool:
    return author_id == principal.user_id or has_permission(principal, "articles:moderate")


class ArticleService(CRUDService[Article, ArticleCreate, ArticleUpdate]):
    def __init__(self) -> None:
        super().__init__(Article, resource_name="Article")

    async def get_visible(
        self,
        db: AsyncSession,
        article_id: uuid.UUID,
        principal: Principal,
        *,
        for_update: bool = False,
    ) -> Article:
        article = await self.get_by_id(db, article_id, options=WITH_AUTHOR, for_update=for_update)
        self._check_visible(article.status, article.author_id, principal)
        return article

    async def read_visible(
        self, db: AsyncSession, cache: Cache, article_id: uuid.UUID, principal: Principal
    ) -> ArticleResponse:
        """`get_visible` as the response, from the cache when it holds the article."""

        async def load() -> str | None:
            article = await db.get(Article, article_id, options=WITH_AUTHOR)
            if article is None:
                return None
            return ArticleResponse.model_validate(article).model_dump_json()

        cached = await article_reads(cache).get_or_load(str(article_id), load, read_source(db))
        if cached is None:
            raise NotFoundException("Article not found")
        article = ArticleResponse.model_validate_json(cached)
        self._check_visible(article.status, article.author_id, principal)
        return article

    async def list_visible(
        self, db: AsyncSession, cache: Cache, principal: Principal, query: ArticleListQuery
    ) -> str:
        """One page of the articles the caller may see, as JSON."""
        where: list[ColumnElement[bool]] = []
        audience = "moderators"
        if not has_permission(principal, "articles:moderate"):
            where.append(
                or_(
                    Article.status == ArticleStatus.PUBLISHED,
                    Article.author_id == principal.user_id,
                )
            )
            audience = str(principal.user_id)

        async def load() -> str:
            return pydantic_core.to_json(await ARTICLE_LISTING.page(db, query, where)).decode()

        key = f"{audience}:{query.fingerprint()}"
        return await article_lists(cache).get_or_load(key, load, read_source(db))

    async def create_for(
        self, db: AsyncSession, cache: Cache, data: ArticleCreate, author_id: uuid.UUID
    ) -> Article:
        article = await self.create(db, data, author_id=author_id)
        await db.refresh(article, attribute_names=["author"])
        await article_lists(cache).invalidate_all()
        return article

    async def edit(
        self,
        db: AsyncSession,
        cache: Cache,
        article_id: uuid.UUID,
        data: ArticleUpdate,
        principal: Principal,
        if_match: str | None = None,
    ) -> Article:
        """Apply the fields sent. `if_match` (the `If-Match` header): the `ETag` the
        caller last read; 412 if the article has changed since."""
        article = await self._get_for_change(db, article_id, principal, if_match=if_match)
        clears_content = "content" in data.model_fields_set and not (data.content or "").strip()
        if article.status is ArticleStatus.PUBLISHED and clears_content:
            raise ValidationException("A published article must keep its content")
        await self.update(db, article, data)
        await self._forget(cache, article_id)
        return article

    async def remove(
        self,
        db: AsyncSession,
        cache: Cache,
        article_id: uuid.UUID,
        principal: Principal,
        if_match: str | None = None,
    ) -> None:
        article = await self._get_for_change(db, article_id, principal, if_match=if_match)
        await self.delete(db, article)
        await self._forget(cache, article_id)

    async def publish(
        self,
        db: AsyncSession,
        cache: Cache,
        article_id: uuid.UUID,
        principal: Principal,
        if_match: str | None = None,
    ) -> Article:
        article = await self._get_for_change(
            db, article_id, principal, action="publish", if_match=if_match
        )
        if article.status is ArticleStatus.PUBLISHED:
            raise ValidationException("Article is already published")
        if not (article.content or "").strip():
            raise ValidationException("Article must have content to be published")
        article.status = ArticleStatus.PUBLISHED
        article.published_at = utcnow()
        await self.commit(db)
        await self._forget(cache, article_id)
        return article

    async def _get_for_change(
        self,
        db: AsyncSession,
        article_id: uuid.UUID,
        principal: Principal,
        action: str = "change",
        if_match: str | None = None,
    ) -> Article:
        """The article to change: visible (404), the caller's own or moderated (403), and
        with `if_match`, still the version the caller read (412). With `if_match` the row
        stays locked until the change commits, so no other write slips in between."""
        # Visibility first: a draft the caller may not see is 404, never 403.
        locked = if_match is not None
        article = await self.get_visible(db, article_id, principal, for_update=locked)
        if not _is_own_or_moderated(article.author_id, principal):
            raise ForbiddenException(f"Only the author or an editor can {action} this article")
        if if_match is not None and not match(if_match, entity_tag(representation(article))):
            raise PreconditionFailedException()
        return article

    @staticmethod
    async def _forget(cache: Cache, article_id: uuid.UUID) -> None:
        await article_reads(cache).invalidate(str(article_id))
        await article_lists(cache).invalidate_all()

    @staticmethod
    def _check_visible(status: ArticleStatus, author_id: uuid.UUID, principal: Principal) -> None:
        if status is ArticleStatus.DRAFT and not _is_own_or_moderated(author_id, principal):
            raise NotFoundException("Article not found")


article_service = ArticleService()
