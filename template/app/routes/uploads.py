"""Reading multipart uploads without holding them in memory, refused early when too large."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import UploadFile
from starlette.types import Message, Receive

from app.exceptions import PayloadTooLargeException, ValidationException
from app.routes.deps import AppResources

# Room for the multipart framing around the file: boundaries, part headers, small fields.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


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
