"""Articles and who may see and change them.

Drafts are private: visible only to their author and to holders of `articles:admin`
(editors). Anyone else asking for a draft gets 404, exactly as for an id that does not
exist, so guessing ids reveals nothing about other people's drafts. A published article
is visible to every reader; changing, deleting or publishing it is for its author or an
`articles:admin` holder, and others get 403 (they can see it, so there is nothing to hide).
"""

import uuid

from sqlalchemy import ColumnElement, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from app.exceptions import ForbiddenException, NotFoundException, ValidationException
from app.models.article import Article, ArticleStatus
from app.models.base import utcnow
from app.schemas.article import ArticleCreate, ArticleUpdate
from app.services.authorization import has_permission
from app.services.crud_service import CRUDService
from app.services.principal import Principal

# Responses embed the author: load it in the same query, never lazily.
WITH_AUTHOR = (joinedload(Article.author),)


def _is_own_or_managed(article: Article, principal: Principal) -> bool:
    return article.author_id == principal.user_id or has_permission(principal, "articles:admin")


class ArticleService(CRUDService[Article, ArticleCreate, ArticleUpdate]):
    def __init__(self) -> None:
        super().__init__(Article, resource_name="Article")

    async def get_visible(
        self, db: AsyncSession, article_id: uuid.UUID, principal: Principal
    ) -> Article:
        article = await self.get_by_id(db, article_id, options=WITH_AUTHOR)
        if article.status is ArticleStatus.DRAFT and not _is_own_or_managed(article, principal):
            raise NotFoundException("Article not found")
        return article

    async def list_visible(
        self, db: AsyncSession, principal: Principal, *, limit: int, offset: int
    ) -> tuple[list[Article], int]:
        where: list[ColumnElement[bool]] = []
        if not has_permission(principal, "articles:admin"):
            where.append(
                or_(
                    Article.status == ArticleStatus.PUBLISHED,
                    Article.author_id == principal.user_id,
                )
            )
        return await self.list(db, limit=limit, offset=offset, where=where, options=WITH_AUTHOR)

    async def create_for(
        self, db: AsyncSession, data: ArticleCreate, author_id: uuid.UUID
    ) -> Article:
        article = await self.create(db, data, author_id=author_id)
        await db.refresh(article, attribute_names=["author"])
        return article

    async def edit(
        self, db: AsyncSession, article_id: uuid.UUID, data: ArticleUpdate, principal: Principal
    ) -> Article:
        article = await self._get_for_change(db, article_id, principal)
        clears_content = "content" in data.model_fields_set and not (data.content or "").strip()
        if article.status is ArticleStatus.PUBLISHED and clears_content:
            raise ValidationException("A published article must keep its content")
        return await self.update(db, article, data)

    async def remove(self, db: AsyncSession, article_id: uuid.UUID, principal: Principal) -> None:
        article = await self._get_for_change(db, article_id, principal)
        await self.delete(db, article)

    async def publish(
        self, db: AsyncSession, article_id: uuid.UUID, principal: Principal
    ) -> Article:
        article = await self._get_for_change(db, article_id, principal, action="publish")
        if article.status is ArticleStatus.PUBLISHED:
            raise ValidationException("Article is already published")
        if not (article.content or "").strip():
            raise ValidationException("Article must have content to be published")
        article.status = ArticleStatus.PUBLISHED
        article.published_at = utcnow()
        await self.commit(db)
        return article

    async def _get_for_change(
        self, db: AsyncSession, article_id: uuid.UUID, principal: Principal, action: str = "change"
    ) -> Article:
        # Visibility first: a draft the caller may not see is 404, never 403.
        article = await self.get_visible(db, article_id, principal)
        if not _is_own_or_managed(article, principal):
            raise ForbiddenException(f"Only the author or an editor can {action} this article")
        return article


article_service = ArticleService()
