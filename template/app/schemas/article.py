import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from app.models.article import ArticleStatus
from app.schemas.listing import DateTimeFilter, FieldSelection, ListQuery
from app.schemas.request import RequestModel, omit_default


class ArticleBase(BaseModel):
    title: str = Field(min_length=1, max_length=255)
    content: str | None = Field(default=None, max_length=100_000)


class ArticleCreate(ArticleBase, RequestModel):
    """A new article: a draft authored by the caller."""

    model_config = ConfigDict(extra="forbid")


class ArticleUpdate(RequestModel):
    """The fields to change; those left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    # Not nullable in the document: null is refused below (omit the title to keep it).
    title: Annotated[str, Field(min_length=1, max_length=255)] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=omit_default
    )
    content: str | None = Field(default=None, max_length=100_000)

    @field_validator("title")
    @classmethod
    def title_not_null(cls, title: str | None) -> str | None:
        # Omitting the title keeps it; sending null would try to erase a required column.
        if title is None:
            raise ValueError("title cannot be null; omit it to keep the current title")
        return title


class AuthorSummary(BaseModel):
    """An article's author, as readers see them."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    full_name: str | None


class ArticleSummary(BaseModel):
    """An article in a list: everything but the content, which only the detail carries."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    status: ArticleStatus
    published_at: datetime | None
    author_id: uuid.UUID
    author: AuthorSummary
    created_at: datetime
    updated_at: datetime


class ArticleResponse(ArticleBase):
    """An article with its content and author."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: ArticleStatus
    published_at: datetime | None
    author_id: uuid.UUID
    author: AuthorSummary
    created_at: datetime
    updated_at: datetime


class ArticleFields(FieldSelection):
    item_schema = ArticleResponse


class ArticleListQuery(ListQuery):
    """`GET /articles` parameters: the filters, orders and fields it allows."""

    item_schema = ArticleSummary

    sort: Literal[
        "created_at", "-created_at", "published_at", "-published_at", "title", "-title"
    ] = Field(default="-created_at", description="`-` for descending; unpublished last.")
    status: ArticleStatus | None = Field(default=None, description="Only articles in this state.")
    author_id: uuid.UUID | None = Field(default=None, description="Only this author's articles.")
    created_after: DateTimeFilter | None = Field(default=None, description="Created at or after.")
    created_before: DateTimeFilter | None = Field(default=None, description="Created before.")
    published_after: DateTimeFilter | None = Field(
        default=None, description="Published at or after."
    )
    published_before: DateTimeFilter | None = Field(default=None, description="Published before.")
