import uuid

from sqlalchemy import or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from app.exceptions import ForbiddenException, NotFoundException, ValidationException
from app.models.article import Article, ArticleStatus
from app.models.base import utcnow
from app.schemas.article import ArticleCreate, ArticleUpdate
from app.services.crud_service import CRUDService

# Responses embed the author: load it in the same query, never lazily.
WITH_AUTHOR = (joinedload(Article.author),)


class ArticleService(CRUDService[Article, ArticleCreate, ArticleUpdate]):
    """Articles: drafts are private to their author; only the author changes an article."""

    def __init__(self) -> None:
        super().__init__(Article, resource_name="Article")

    async def get_visible(
        self, db: AsyncSession, article_id: uuid.UUID, user_id: uuid.UUID
    ) -> Article:
        article = await self.get_by_id(db, article_id, options=WITH_AUTHOR)
        # A draft someone else wrote is reported as missing, so ids of drafts do not leak.
        if article.status is ArticleStatus.DRAFT and article.author_id != user_id:
            raise NotFoundException("Article not found")
        return article

    async def list_visible(
        self, db: AsyncSession, user_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[list[Article], int]:
        visible = or_(Article.status == ArticleStatus.PUBLISHED, Article.author_id == user_id)
        return await self.list(db, limit=limit, offset=offset, where=[visible], options=WITH_AUTHOR)

    async def create_for(
        self, db: AsyncSession, data: ArticleCreate, author_id: uuid.UUID
    ) -> Article:
        article = await self.create(db, data, author_id=author_id)
        await db.refresh(article, attribute_names=["author"])
        return article

    async def update_own(
        self, db: AsyncSession, article_id: uuid.UUID, data: ArticleUpdate, user_id: uuid.UUID
    ) -> Article:
        article = await self._get_own(db, article_id, user_id)
        clears_content = "content" in data.model_fields_set and not (data.content or "").strip()
        if article.status is ArticleStatus.PUBLISHED and clears_content:
            raise ValidationException("A published article must keep its content")
        return await self.update(db, article, data)

    async def delete_own(self, db: AsyncSession, article_id: uuid.UUID, user_id: uuid.UUID) -> None:
        article = await self._get_own(db, article_id, user_id)
        await self.delete(db, article)

    async def publish(self, db: AsyncSession, article_id: uuid.UUID, user_id: uuid.UUID) -> Article:
        article = await self._get_own(db, article_id, user_id, action="publish")
        if article.status is ArticleStatus.PUBLISHED:
            raise ValidationException("Article is already published")
        if not (article.content or "").strip():
            raise ValidationException("Article must have content to be published")
        article.status = ArticleStatus.PUBLISHED
        article.published_at = utcnow()
        await self.commit(db)
        return article

    async def _get_own(
        self, db: AsyncSession, article_id: uuid.UUID, user_id: uuid.UUID, action: str = "change"
    ) -> Article:
        article = await self.get_visible(db, article_id, user_id)
        if article.author_id != user_id:
            raise ForbiddenException(f"Only the author can {action} this article")
        return article


article_service = ArticleService()
