"""Articles. Each endpoint declares its permission; ownership (who may see a draft,
who may change an article) is decided by `article_service`."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from pydantic.json_schema import SkipJsonSchema

from app.exceptions import (
    ForbiddenException,
    InvalidCursorException,
    NotFoundException,
    PreconditionFailedException,
    ValidationException,
)
from app.routes.api_route import ApiRoute
from app.routes.deps import AppResources, CurrentPrincipal, DbSession, ReadDbSession
from app.routes.openapi import NOT_MODIFIED, errors
from app.routes.permissions import require_permission
from app.routes.responses import conditional_json, tagged_json
from app.schemas.article import (
    ArticleCreate,
    ArticleFields,
    ArticleListQuery,
    ArticleResponse,
    ArticleSummary,
    ArticleUpdate,
)
from app.schemas.listing import Page
from app.services.article_service import article_service, representation

router = APIRouter(route_class=ApiRoute)

ArticleId = Annotated[uuid.UUID, Path(description="The article's id.")]


# Writes take the `ETag` of the article as the caller read it: a write that would undo
# someone else's change since is refused (RFC 9110, 13.1.1). Optional: without it, the
# write is unconditional.
def _if_match(
    request: Request,
    if_match: Annotated[
        # Optional, but never null in the document: a header is sent or left out.
        str | SkipJsonSchema[None],
        Header(
            alias="If-Match",
            description="The `ETag` of the article as you last read it (or `*`): 412 "
            "`precondition_failed` if it has changed since (or if the value names no "
            "version at all). Leave it out to write regardless.",
        ),
    ] = None,
) -> str | None:
    """Every `If-Match` line as one list (RFC 9110, 5.3: lines of a list field combine);
    the parameter documents the header, whose first line alone it would hold."""
    lines = request.headers.getlist("If-Match")
    return ", ".join(lines) if lines else None


IfMatch = Annotated[str | None, Depends(_if_match)]


@router.get(
    "",
    response_model=Page[ArticleSummary],
    responses={**NOT_MODIFIED, **errors(InvalidCursorException)},
)
@require_permission("articles:read")
async def list_articles(
    query: Annotated[ArticleListQuery, Query()],
    request: Request,
    principal: CurrentPrincipal,
    db: ReadDbSession,
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
    article_id: ArticleId,
    selection: Annotated[ArticleFields, Query()],
    request: Request,
    principal: CurrentPrincipal,
    db: ReadDbSession,
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
    responses=errors(
        ForbiddenException, NotFoundException, PreconditionFailedException, ValidationException
    ),
)
@require_permission("articles:write")
async def update_article(
    article_id: ArticleId,
    data: ArticleUpdate,
    principal: CurrentPrincipal,
    db: DbSession,
    resources: AppResources,
    if_match: IfMatch = None,
) -> Response:
    """Change your article's title or content (only the fields sent are changed).

    Send the `ETag` you read in `If-Match` to refuse the change (412) if someone else
    changed the article meanwhile; the answer carries the new `ETag`.
    """
    article = await article_service.edit(db, resources.cache, article_id, data, principal, if_match)
    return tagged_json(representation(article))


@router.delete(
    "/{article_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(ForbiddenException, NotFoundException, PreconditionFailedException),
)
@require_permission("articles:delete")
async def delete_article(
    article_id: ArticleId,
    principal: CurrentPrincipal,
    db: DbSession,
    resources: AppResources,
    if_match: IfMatch = None,
) -> None:
    """Delete your article (with `If-Match`: only the version you read, else 412)."""
    await article_service.remove(db, resources.cache, article_id, principal, if_match)


@router.post(
    "/{article_id}/publish",
    response_model=ArticleResponse,
    responses=errors(
        ForbiddenException, NotFoundException, PreconditionFailedException, ValidationException
    ),
)
@require_permission("articles:publish")
async def publish_article(
    article_id: ArticleId,
    principal: CurrentPrincipal,
    db: DbSession,
    resources: AppResources,
    if_match: IfMatch = None,
) -> Response:
    """Publish your draft. It needs content; publishing twice is refused. With
    `If-Match`: only the version you read (else 412). The answer carries the new `ETag`."""
    article = await article_service.publish(db, resources.cache, article_id, principal, if_match)
    return tagged_json(representation(article))
