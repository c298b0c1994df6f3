"""Reading multipart uploads without holding them in memory, refused early when too large."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import UploadFile

from app.core.body_limit import raise_body_limit
from app.exceptions import ValidationException
from app.routes.deps import AppResources
from app.schemas.request import storable_text

# Room for the multipart framing around the file: boundaries, part headers, small fields.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


async def read_upload(request: Request, resources: AppResources) -> AsyncIterator[UploadFile]:
    """The multipart field `file`, refused with 413 as soon as the body passes the limit.

    The request body limit (`app.core.body_limit`) is raised to UPLOAD_MAX_BYTES for
    this request: a declared Content-Length over it is refused before anything is read,
    a body without one (chunked) as soon as it passes it. Starlette spools the file to
    a temporary file on disk past 1 MiB, so no upload sits in memory whole.
    """
    max_bytes = resources.settings.upload_max_bytes
    raise_body_limit(
        request.scope,
        max_bytes + MULTIPART_OVERHEAD_BYTES,
        f"Files are limited to {max_bytes} bytes",
        stated_max_bytes=max_bytes,
    )
    form = await request.form(max_files=1, max_fields=8)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ValidationException("Send the file as the multipart/form-data field 'file'")
        _check_storable(upload)
        if others := sorted(set(form.keys()) - {"file"}):
            # As the document says (`additionalProperties: false`), like JSON bodies.
            raise ValidationException(f"Send only the field 'file', not {others}")
        yield upload
    finally:
        await form.close()


def _check_storable(upload: UploadFile) -> None:
    """The file name and type are stored as text: the same rule as any request text."""
    for name, value in (("filename", upload.filename), ("content_type", upload.content_type)):
        if value is None:
            continue
        try:
            storable_text(value)
        except ValueError as error:
            raise ValidationException(
                "The file's part headers carry text that cannot be stored",
                details=[
                    {
                        "loc": ["body", "file", name],
                        "message": str(error),
                        "type": "unstorable_text",
                    }
                ],
            ) from error


UploadedFile = Annotated[UploadFile, Depends(read_upload)]
