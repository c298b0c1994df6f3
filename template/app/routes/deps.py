"""Dependencies shared by the routes, as `Annotated` aliases to keep signatures short."""

from collections.abc import AsyncIterator
from typing import Annotated, cast

import structlog
from fastapi import BackgroundTasks, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.resources import Resources
from app.email.base import EmailProvider
from app.routes.token_transport import AccessToken
from app.services.auth_service import AuthService, ClientInfo
from app.services.mail_service import MailService
from app.services.principal import Principal
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


async def get_principal(auth: Auth, token: AccessToken) -> Principal:
    """The authenticated caller, or 401 with `WWW-Authenticate`.

    On the hot path of every protected route: no database session is opened here
    (the service opens one only when the user's cached snapshot is missing).
    """
    principal = await auth.authenticate(token)
    # Every later log line of this request, the access log included, names the caller.
    structlog.contextvars.bind_contextvars(user_id=str(principal.user_id))
    return principal


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
