import uuid
from datetime import datetime

from pydantic import BaseModel

from app.models.file import File


class FileResponse(BaseModel):
    id: uuid.UUID
    original_name: str
    size: int
    content_type: str
    checksum_sha256: str
    created_at: datetime
    # GET it with your access token for the file's bytes (see the download endpoint).
    download_url: str

    @classmethod
    def from_model(cls, file: File, *, download_url: str) -> "FileResponse":
        return cls(
            id=file.id,
            original_name=file.original_name,
            size=file.size,
            content_type=file.content_type,
            checksum_sha256=file.checksum_sha256,
            created_at=file.created_at,
            download_url=download_url,
        )
