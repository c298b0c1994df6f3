"""Comments on articles and who may see and change them.

A comment is as visible as its article: the comments of a draft the caller may not see
answer 404, as the draft itself does. Comments open once an article is published.
Changing or deleting a comment is for its author or a `comments:moderate` holder
(editors); anyone else gets 403.
"""

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from app.exceptions import ForbiddenException, ValidationException
from app.models.article import ArticleStatus
from app.models.comment import Comment
from app.models.user import User
from app.schemas.comment import CommentCreate, CommentListQuery, CommentUpdate
from app.services.article_service import article_service
from app.services.authorization import has_permission
from app.services.crud_service import CRUDService
from app.services.listing import Join, Listing
from app.services.principal import Principal

# Responses embed the author: load it in the same query, never lazily.
WITH_AUTHOR = (joinedload(Comment.author),)

# How the list maps onto SQL: the column behind each response field, and the join the
# author's fields need (made only when the client selects one of them).
COMMENT_LISTING = Listing(
    query=CommentListQuery,
    id_column=Comment.id,
    columns={
        "id": Comment.id,
        "body": Comment.body,
        "article_id": Comment.article_id,
        "author_id": Comment.author_id,
        "author.id": User.id,
        "author.full_name": User.full_name,
        "created_at": Comment.created_at,
        "updated_at": Comment.updated_at,
    },
    joins={"author": Join(User, User.id == Comment.author_id)},
    sorts={"created_at": Comment.created_at},
)


class CommentService(CRUDService[Comment, CommentCreate, CommentUpdate]):
    def __init__(self) -> None:
        super().__init__(Comment, resource_name="Comment")

    async def list_for_article(
        self, db: AsyncSession, article_id: uuid.UUID, principal: Principal, query: CommentListQuery
    ) -> dict[str, Any]:
        """One page of the article's comments, as JSON-ready data."""
        # The article's own rules decide: 404 for a draft the caller may not see.
        await article_service.get_visible(db, article_id, principal)
        return await COMMENT_LISTING.page(db, query, [Comment.article_id == article_id])

    async def create_for(
        self, db: AsyncSession, article_id: uuid.UUID, data: CommentCreate, principal: Principal
    ) -> Comment:
        article = await article_service.get_visible(db, article_id, principal)
        if article.status is not ArticleStatus.PUBLISHED:
            raise ValidationException("Comments open once the article is published")
        comment = await self.create(db, data, article_id=article.id, author_id=principal.user_id)
        await db.refresh(comment, attribute_names=["author"])
        return comment

    async def edit(
        self, db: AsyncSession, comment_id: uuid.UUID, data: CommentUpdate, principal: Principal
    ) -> Comment:
        comment = await self._get_for_change(db, comment_id, principal)
        return await self.update(db, comment, data)

    async def remove(self, db: AsyncSession, comment_id: uuid.UUID, principal: Principal) -> None:
        comment = await self._get_for_change(db, comment_id, principal)
        await self.delete(db, comment)

    async def _get_for_change(
        self, db: AsyncSession, comment_id: uuid.UUID, principal: Principal
    ) -> Comment:
        # Comments exist only on published articles, which stay published: whoever may
        # change comments may see this one, so the answer is 403, not 404.
        comment = await self.get_by_id(db, comment_id, options=WITH_AUTHOR)
        own = comment.author_id == principal.user_id
        if not own and not has_permission(principal, "comments:moderate"):
            raise ForbiddenException("Only the comment's author or a moderator can change it")
        return comment


comment_service = CommentService()
