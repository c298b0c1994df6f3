import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from app.schemas.article import AuthorSummary

# Surrounding whitespace is dropped first, so a blank comment is refused as empty.
CommentBody = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)
]


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: CommentBody


class CommentUpdate(BaseModel):
    """The body is all a comment's author can change."""

    model_config = ConfigDict(extra="forbid")

    body: CommentBody


class CommentResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    body: str
    article_id: uuid.UUID
    author_id: uuid.UUID
    author: AuthorSummary
    created_at: datetime
    updated_at: datetime
