"""Dependencies shared by the routes, as `Annotated` aliases to keep signatures short."""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import BackgroundTasks, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile
from starlette.types import Message, Receive

from app.core.resources import Resources
from app.email.base import EmailProvider
from app.exceptions import PayloadTooLargeException, UnauthorizedException, ValidationException
from app.models.user import User
from app.schemas.pagination import PageParams
from app.services.mail_service import MailService
from app.services.user_service import user_service
from app.storage.base import Storage

# Room for the multipart framing around the file: boundaries, part headers, small fields.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


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


def get_storage(request: Request) -> Storage:
    return cast(Storage, request.app.state.storage)


def get_email_provider(request: Request) -> EmailProvider:
    return cast(EmailProvider, request.app.state.email_provider)


StorageDep = Annotated[Storage, Depends(get_storage)]
EmailProviderDep = Annotated[EmailProvider, Depends(get_email_provider)]


def get_mailer(
    background_tasks: BackgroundTasks, provider: EmailProviderDep, resources: AppResources
) -> MailService:
    return MailService(provider, background_tasks, resources.settings)


# `mailer.send_welcome(...)` etc.: rendered now, delivered after the response is sent.
Mailer = Annotated[MailService, Depends(get_mailer)]


class _BodyTooLargeError(Exception):
    pass


def _counting(receive: Receive, limit: int) -> Receive:
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLargeError
        return message

    return receive_within_limit


async def read_upload(request: Request, resources: AppResources) -> AsyncIterator[UploadFile]:
    """The multipart field `file`, refused with 413 as soon as the body passes the limit.

    A declared Content-Length over the limit is refused before anything is read; a
    body without one (chunked) is counted while it streams in. Starlette spools the
    file to a temporary file on disk past 1 MiB, so no upload sits in memory whole.
    """
    max_bytes = resources.settings.upload_max_bytes
    limit = max_bytes + MULTIPART_OVERHEAD_BYTES
    too_large = f"Files are limited to {max_bytes} bytes"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeException(too_large)
    counted = Request(request.scope, _counting(request.receive, limit))
    try:
        form = await counted.form(max_files=1, max_fields=8)
    except _BodyTooLargeError as error:
        raise PayloadTooLargeException(too_large) from error
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ValidationException("Send the file as the multipart/form-data field 'file'")
        yield upload
    finally:
        await form.close()


UploadedFile = Annotated[UploadFile, Depends(read_upload)]
