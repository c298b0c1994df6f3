"""Comments: listed and written under their article, changed and deleted by their own id.

Each endpoint declares its permission; which articles take comments and who may change
one is decided by `comment_service`.
"""

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from app.exceptions import (
    ForbiddenException,
    InvalidCursorException,
    NotFoundException,
    ValidationException,
)
from app.routes.api_route import ApiRoute
from app.routes.deps import CurrentPrincipal, DbSession, ReadDbSession
from app.routes.openapi import errors
from app.routes.permissions import require_permission
from app.routes.responses import json_response
from app.schemas.comment import CommentCreate, CommentListQuery, CommentResponse, CommentUpdate
from app.schemas.listing import Page
from app.services.comment_service import comment_service

# Who is calling is checked before a body is read (`app.routes.api_route`).
router = APIRouter(route_class=ApiRoute)

ArticleId = Annotated[uuid.UUID, Path(description="The article's id.")]
CommentId = Annotated[uuid.UUID, Path(description="The comment's id.")]


@router.get(
    "/articles/{article_id}/comments",
    response_model=Page[CommentResponse],
    responses=errors(NotFoundException, InvalidCursorException),
)
@require_permission("comments:read")
async def list_comments(
    article_id: ArticleId,
    query: Annotated[CommentListQuery, Query()],
    principal: CurrentPrincipal,
    db: ReadDbSession,
) -> Response:
    """The article's comments, oldest first unless `sort` says otherwise."""
    page = await comment_service.list_for_article(db, article_id, principal, query)
    return json_response(page)


@router.post(
    "/articles/{article_id}/comments",
    response_model=CommentResponse,
    status_code=status.HTTP_201_CREATED,
    responses=errors(NotFoundException, ValidationException),
)
@require_permission("comments:write")
async def create_comment(
    article_id: ArticleId, data: CommentCreate, principal: CurrentPrincipal, db: DbSession
) -> CommentResponse:
    """Comment on a published article."""
    comment = await comment_service.create_for(db, article_id, data, principal)
    return CommentResponse.model_validate(comment)


@router.patch(
    "/comments/{comment_id}",
    response_model=CommentResponse,
    responses=errors(ForbiddenException, NotFoundException),
)
@require_permission("comments:write")
async def update_comment(
    comment_id: CommentId, data: CommentUpdate, principal: CurrentPrincipal, db: DbSession
) -> CommentResponse:
    """Rewrite your comment."""
    comment = await comment_service.edit(db, comment_id, data, principal)
    return CommentResponse.model_validate(comment)


@router.delete(
    "/comments/{comment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(ForbiddenException, NotFoundException),
)
@require_permission("comments:delete")
async def delete_comment(comment_id: CommentId, principal: CurrentPrincipal, db: DbSession) -> None:
    """Delete your comment (moderators may delete any)."""
    await comment_service.remove(db, comment_id, principal)
