"""Articles. Each endpoint declares its permission; ownership (who may see a draft,
who may change an article) is decided by `article_service`."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.exceptions import ForbiddenException, NotFoundException, ValidationException
from app.routes.deps import AppResources, CurrentPrincipal, DbSession
from app.routes.openapi import NOT_MODIFIED, errors
from app.routes.permissions import require_permission
from app.routes.responses import conditional_json
from app.schemas.article import (
    ArticleCreate,
    ArticleFields,
    ArticleListQuery,
    ArticleResponse,
    ArticleSummary,
    ArticleUpdate,
)
from app.schemas.listing import Page
from app.services.article_service import article_service

router = APIRouter()


@router.get("", response_model=Page[ArticleSummary], responses=NOT_MODIFIED)
@require_permission("articles:read")
async def list_articles(
    query: Annotated[ArticleListQuery, Query()],
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
    resources: AppResources,
) -> Response:
    """Published articles and your own drafts (every draft for editors), newest first
    unless `sort` says otherwise.

    Items leave the content out; the detail carries it. Pages are served from the cache
    until an article changes, with an `ETag` (see the detail endpoint).
    """
    page = await article_service.list_visible(db, resources.cache, principal, query)
    return conditional_json(request, page.encode())


@router.post("", response_model=ArticleResponse, status_code=status.HTTP_201_CREATED)
@require_permission("articles:write")
async def create_article(
    data: ArticleCreate, principal: CurrentPrincipal, db: DbSession, resources: AppResources
) -> ArticleResponse:
    """Create a draft article authored by you."""
    article = await article_service.create_for(db, resources.cache, data, principal.user_id)
    return ArticleResponse.model_validate(article)


@router.get(
    "/{article_id}",
    response_model=ArticleResponse,
    responses={**NOT_MODIFIED, **errors(NotFoundException)},
)
@require_permission("articles:read")
async def read_article(
    article_id: uuid.UUID,
    selection: Annotated[ArticleFields, Query()],
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
    resources: AppResources,
) -> Response:
    """One article. Someone else's draft answers 404, as if it did not exist.

    Served from the cache until the article changes; send the `ETag` back in
    `If-None-Match` to get an empty 304 while it has not changed.
    """
    article = await article_service.read_visible(db, resources.cache, article_id, principal)
    body = article.model_dump_json(include=selection.include()).encode()
    return conditional_json(request, body)


@router.patch(
    "/{article_id}",
    response_model=ArticleResponse,
    responses=errors(ForbiddenException, NotFoundException),
)
@require_permission("articles:write")
async def update_article(
    article_id: uuid.UUID,
    data: ArticleUpdate,
    principal: CurrentPrincipal,
    db: DbSession,
    resources: AppResources,
) -> ArticleResponse:
    """Change your article's title or content (only the fields sent are changed)."""
    article = await article_service.edit(db, resources.cache, article_id, data, principal)
    return ArticleResponse.model_validate(article)


@router.delete(
    "/{article_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(ForbiddenException, NotFoundException),
)
@require_permission("articles:delete")
async def delete_article(
    article_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession, resources: AppResources
) -> None:
    """Delete your article."""
    await article_service.remove(db, resources.cache, article_id, principal)


@router.post(
    "/{article_id}/publish",
    response_model=ArticleResponse,
    responses=errors(ForbiddenException, NotFoundException, ValidationException),
)
@require_permission("articles:publish")
async def publish_article(
    article_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession, resources: AppResources
) -> ArticleResponse:
    """Publish your draft. It needs content; publishing twice is refused."""
    article = await article_service.publish(db, resources.cache, article_id, principal)
    return ArticleResponse.model_validate(article)
