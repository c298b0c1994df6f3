"""Dependencies shared by the routes, as `Annotated` aliases to keep signatures short."""

from collections.abc import AsyncIterator
from typing import Annotated, cast

import structlog
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.resources import Resources
from app.routes.token_transport import AccessToken
from app.schemas.pagination import PageParams
from app.services.auth_service import AuthService, ClientInfo
from app.services.principal import Principal


def get_resources(request: Request) -> Resources:
    return cast(Resources, request.app.state.resources)


AppResources = Annotated[Resources, Depends(get_resources)]


async def get_db(resources: AppResources) -> AsyncIterator[AsyncSession]:
    async with resources.session_factory() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(get_db)]


def get_auth_service(resources: AppResources) -> AuthService:
    return AuthService(resources)


Auth = Annotated[AuthService, Depends(get_auth_service)]


def get_client_info(request: Request) -> ClientInfo:
    return ClientInfo(
        ip_address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


Client = Annotated[ClientInfo, Depends(get_client_info)]


async def get_principal(auth: Auth, db: DbSession, token: AccessToken) -> Principal:
    """The authenticated caller, or 401 with `WWW-Authenticate`."""
    principal = await auth.authenticate(db, token)
    # Every later log line of this request, the access log included, names the caller.
    structlog.contextvars.bind_contextvars(user_id=str(principal.user_id))
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
Pagination = Annotated[PageParams, Depends()]
