import uuid

from fastapi import APIRouter, status

from app.routes.deps import CurrentPrincipal, DbSession, Pagination
from app.schemas.article import ArticleCreate, ArticleResponse, ArticleSummary, ArticleUpdate
from app.schemas.pagination import Page
from app.services.article_service import article_service

router = APIRouter()


@router.get("", response_model=Page[ArticleSummary])
async def list_articles(
    principal: CurrentPrincipal, db: DbSession, page: Pagination
) -> Page[ArticleSummary]:
    """Published articles and your own drafts, newest first (without their content)."""
    articles, total = await article_service.list_visible(
        db, principal.user_id, limit=page.limit, offset=page.offset
    )
    return Page[ArticleSummary](
        items=[ArticleSummary.model_validate(article) for article in articles],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("", response_model=ArticleResponse, status_code=status.HTTP_201_CREATED)
async def create_article(
    data: ArticleCreate, principal: CurrentPrincipal, db: DbSession
) -> ArticleResponse:
    """Create a draft article authored by you."""
    article = await article_service.create_for(db, data, principal.user_id)
    return ArticleResponse.model_validate(article)


@router.get("/{article_id}", response_model=ArticleResponse)
async def read_article(
    article_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession
) -> ArticleResponse:
    """One article. Someone else's draft answers 404, as if it did not exist."""
    article = await article_service.get_visible(db, article_id, principal.user_id)
    return ArticleResponse.model_validate(article)


@router.patch("/{article_id}", response_model=ArticleResponse)
async def update_article(
    article_id: uuid.UUID, data: ArticleUpdate, principal: CurrentPrincipal, db: DbSession
) -> ArticleResponse:
    """Change your article's title or content (only the fields sent are changed)."""
    article = await article_service.update_own(db, article_id, data, principal.user_id)
    return ArticleResponse.model_validate(article)


@router.delete("/{article_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_article(article_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession) -> None:
    """Delete your article."""
    await article_service.delete_own(db, article_id, principal.user_id)


@router.post("/{article_id}/publish", response_model=ArticleResponse)
async def publish_article(
    article_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession
) -> ArticleResponse:
    """Publish your draft. It needs content; publishing twice is refused."""
    article = await article_service.publish(db, article_id, principal.user_id)
    return ArticleResponse.model_validate(article)
