import uuid
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, Field, field_validator

from app.models.file import File
from app.schemas.listing import DateTimeFilter, ListQuery


class FileResponse(BaseModel):
    """An uploaded file's metadata and where its bytes are."""

    id: uuid.UUID
    original_name: str
    size: int
    content_type: str
    checksum_sha256: str
    created_at: datetime
    # GET it with your access token for the file's bytes (see the download endpoint).
    download_url: str

    @classmethod
    def from_model(cls, file: File, *, download_url: str) -> Self:
        return cls(
            id=file.id,
            original_name=file.original_name,
            size=file.size,
            content_type=file.content_type,
            checksum_sha256=file.checksum_sha256,
            created_at=file.created_at,
            download_url=download_url,
        )


class FileSummary(BaseModel):
    """A file in a list: its metadata and owner. The bytes are at `/files/{id}/content`
    (the detail's `download_url`)."""

    id: uuid.UUID
    owner_id: uuid.UUID
    original_name: str
    size: int = Field(description="Bytes.")
    content_type: str
    checksum_sha256: str
    created_at: datetime


class FileListQuery(ListQuery):
    """`GET /files` parameters: the filters, orders and fields it allows."""

    item_schema = FileSummary

    sort: Literal[
        "created_at", "-created_at", "original_name", "-original_name", "size", "-size"
    ] = Field(default="-created_at", description="`-` for descending.")
    owner_id: uuid.UUID | None = Field(
        default=None, description="Owned by this user (only your own without `files:moderate`)."
    )
    content_type: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Stored with this type, such as `image/png` (case-insensitive).",
    )
    created_after: DateTimeFilter | None = Field(default=None, description="Created at or after.")
    created_before: DateTimeFilter | None = Field(default=None, description="Created before.")

    @field_validator("content_type")
    @classmethod
    def stored_form(cls, content_type: str | None) -> str | None:
        # Types are stored lower-cased (`app.services.file_service.normalize_content_type`).
        return None if content_type is None else content_type.strip().lower()
