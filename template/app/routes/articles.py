"""Articles. Each endpoint declares its permission; ownership (who may see a draft,
who may change an article) is decided by `article_service`."""

import uuid

from fastapi import APIRouter, status

from app.routes.deps import CurrentPrincipal, DbSession, Pagination
from app.routes.permissions import require_permission
from app.schemas.article import ArticleCreate, ArticleResponse, ArticleSummary, ArticleUpdate
from app.schemas.pagination import Page
from app.services.article_service import article_service

router = APIRouter()


@router.get("", response_model=Page[ArticleSummary])
@require_permission("articles:read")
async def list_articles(
    principal: CurrentPrincipal, db: DbSession, page: Pagination
) -> Page[ArticleSummary]:
    """Published articles and your own drafts (every draft for editors), newest first.

    Items leave the content out; the detail carries it.
    """
    articles, total = await article_service.list_visible(
        db, principal, limit=page.limit, offset=page.offset
    )
    return Page[ArticleSummary](
        items=[ArticleSummary.model_validate(article) for article in articles],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("", response_model=ArticleResponse, status_code=status.HTTP_201_CREATED)
@require_permission("articles:write")
async def create_article(
    data: ArticleCreate, principal: CurrentPrincipal, db: DbSession
) -> ArticleResponse:
    """Create a draft article authored by you."""
    article = await article_service.create_for(db, data, principal.user_id)
    return ArticleResponse.model_validate(article)


@router.get("/{article_id}", response_model=ArticleResponse)
@require_permission("articles:read")
async def read_article(
    article_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession
) -> ArticleResponse:
    """One article. Someone else's draft answers 404, as if it did not exist."""
    article = await article_service.get_visible(db, article_id, principal)
    return ArticleResponse.model_validate(article)


@router.patch("/{article_id}", response_model=ArticleResponse)
@require_permission("articles:write")
async def update_article(
    article_id: uuid.UUID, data: ArticleUpdate, principal: CurrentPrincipal, db: DbSession
) -> ArticleResponse:
    """Change your article's title or content (only the fields sent are changed)."""
    article = await article_service.edit(db, article_id, data, principal)
    return ArticleResponse.model_validate(article)


@router.delete("/{article_id}", status_code=status.HTTP_204_NO_CONTENT)
@require_permission("articles:delete")
async def delete_article(article_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession) -> None:
    """Delete your article."""
    await article_service.remove(db, article_id, principal)


@router.post("/{article_id}/publish", response_model=ArticleResponse)
@require_permission("articles:publish")
async def publish_article(
    article_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession
) -> ArticleResponse:
    """Publish your draft. It needs content; publishing twice is refused."""
    article = await article_service.publish(db, article_id, principal)
    return ArticleResponse.model_validate(article)
