"""Dependencies shared by the routes, as `Annotated` aliases to keep signatures short."""

from collections.abc import AsyncIterator
from typing import Annotated, cast

import structlog
from fastapi import BackgroundTasks, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.rate_limit import route_limit
from app.core.resources import Resources
from app.email.base import EmailProvider
from app.exceptions import TooManyRequestsException, UnauthorizedException
from app.routes.token_transport import AccessToken, presented_token
from app.services.auth_service import AuthService, ClientInfo
from app.services.mail_service import MailService
from app.services.principal import Caller, Principal
from app.storage.base import Storage

# Dependencies are `async def` even when they do not await: FastAPI runs plain `def`
# dependencies in a worker thread, a hand-off that costs more than their work.


async def get_resources(request: Request) -> Resources:
    return cast(Resources, request.app.state.resources)


AppResources = Annotated[Resources, Depends(get_resources)]


async def get_db(resources: AppResources) -> AsyncIterator[AsyncSession]:
    async with resources.session_factory() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(get_db)]


async def get_auth_service(resources: AppResources) -> AuthService:
    return AuthService(resources)


Auth = Annotated[AuthService, Depends(get_auth_service)]


async def get_client_info(request: Request) -> ClientInfo:
    return ClientInfo(
        ip_address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


Client = Annotated[ClientInfo, Depends(get_client_info)]


async def identify_caller(request: Request) -> Caller:
    """Every API request passes here once (a dependency of the API router): who is
    calling, counted against their rate limit; 429 with Retry-After once it is used up.

    On the hot path of every route: one cache round trip, no database session (the
    service opens one only when the user's cached snapshot is missing). Public routes
    take a missing or refused token as an anonymous caller.
    """
    resources = cast(Resources, request.app.state.resources)
    caller = await AuthService(resources).identify(
        presented_token(request),
        request.client.host if request.client else None,
        route_limit(request.scope.get("endpoint")),
    )
    if (status := caller.rate_limit) is not None:
        # Headers set on a Response would be lost with an error: the request middleware
        # adds them to whatever answer goes out.
        request.state.rate_limit = status
        if status.retry_after_seconds is not None:
            raise TooManyRequestsException(retry_after_seconds=status.retry_after_seconds)
    if caller.principal is not None:
        # Every later log line of this request, the access log included, names the caller.
        structlog.contextvars.bind_contextvars(user_id=str(caller.principal.user_id))
    return caller


ApiCaller = Annotated[Caller, Depends(identify_caller)]


async def get_principal(caller: ApiCaller, token: AccessToken) -> Principal:
    """The authenticated caller, or 401 with `WWW-Authenticate`.

    `token` declares the security scheme (OpenAPI) and refuses a request without one;
    `identify_caller`, which FastAPI runs once per request, has already verified it.
    """
    if caller.principal is None:
        raise caller.rejection or UnauthorizedException("Not authenticated")
    return caller.principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_storage(request: Request) -> Storage:
    return cast(Storage, request.app.state.storage)


async def get_email_provider(request: Request) -> EmailProvider:
    return cast(EmailProvider, request.app.state.email_provider)


StorageDep = Annotated[Storage, Depends(get_storage)]
EmailProviderDep = Annotated[EmailProvider, Depends(get_email_provider)]


async def get_mailer(
    background_tasks: BackgroundTasks, provider: EmailProviderDep, resources: AppResources
) -> MailService:
    return MailService(provider, background_tasks, resources.settings)


# `mailer.send_welcome(...)` etc.: rendered now, delivered after the response is sent.
Mailer = Annotated[MailService, Depends(get_mailer)]
