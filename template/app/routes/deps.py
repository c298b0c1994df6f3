"""Dependencies shared by the routes, as `Annotated` aliases to keep signatures short."""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.resources import Resources
from app.exceptions import UnauthorizedException
from app.models.user import User
from app.schemas.pagination import PageParams
from app.services.user_service import user_service


def get_resources(request: Request) -> Resources:
    return cast(Resources, request.app.state.resources)


AppResources = Annotated[Resources, Depends(get_resources)]


async def get_db(resources: AppResources) -> AsyncIterator[AsyncSession]:
    async with resources.session_factory() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(get_db)]

# auto_error=False: a missing header becomes our 401 with the common error body, not a 403.
bearer_scheme = HTTPBearer(auto_error=False, description="Access token from /api/v1/auth/login")


async def get_current_user(
    resources: AppResources,
    db: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> User:
    if credentials is None:
        raise UnauthorizedException("Not authenticated")
    claims = resources.tokens.decode(credentials.credentials)
    try:
        user_id = uuid.UUID(claims.subject)
    except ValueError as error:
        raise UnauthorizedException("Invalid access token") from error
    return await user_service.get_active(db, user_id)


CurrentUser = Annotated[User, Depends(get_current_user)]
Pagination = Annotated[PageParams, Depends()]
