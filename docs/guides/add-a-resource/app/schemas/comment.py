import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.schemas.article import AuthorSummary
from app.schemas.listing import ListQuery
from app.schemas.request import RequestModel

# Surrounding whitespace is dropped first, so a blank comment is refused as empty.
CommentBody = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)
]


class CommentCreate(RequestModel):
    """A new comment: its body."""

    model_config = ConfigDict(extra="forbid")

    body: CommentBody


class CommentUpdate(RequestModel):
    """The body is all a comment's author can change."""

    model_config = ConfigDict(extra="forbid")

    body: CommentBody


class CommentResponse(BaseModel):
    """A comment, with its author."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    body: str
    article_id: uuid.UUID
    author_id: uuid.UUID
    author: AuthorSummary
    created_at: datetime
    updated_at: datetime


class CommentListQuery(ListQuery):
    """`GET /articles/{article_id}/comments` parameters: paging, `fields` and the order."""

    item_schema = CommentResponse

    # A thread reads oldest first.
    sort: Literal["created_at", "-created_at"] = Field(
        default="created_at", description="`-created_at` for the newest first."
    )
