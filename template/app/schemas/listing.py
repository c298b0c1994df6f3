"""What collection endpoints share: the query parameters and the page envelope.

A resource's list endpoint takes a `ListQuery` subclass as a FastAPI query model
(`Annotated[ArticleListQuery, Query()]`). The subclass names its item schema (which
fields `fields=` may pick), declares `sort` as a `Literal` of the allowed orders and
adds its filters as optional fields. Anything else in the query string is refused with
a 422 that says what is allowed, so no client input ever names a column by itself.
"""

import hashlib
from collections.abc import Iterator
from functools import cache
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


def _field_paths(schema: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, info in schema.model_fields.items():
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            yield from _field_paths(nested, f"{prefix}{name}.")
        else:
            yield prefix + name


@cache
def field_paths(schema: type[BaseModel]) -> tuple[str, ...]:
    """Every field a client may select: `title`, and `author.full_name` for nested models."""
    return tuple(_field_paths(schema))


def parse_field_selection(value: str, schema: type[BaseModel]) -> tuple[str, ...]:
    """`"title, author"` -> `("title", "author.id", "author.full_name")`, in schema order.

    Naming a nested model selects all of its fields. Raises ValueError naming the
    allowed fields when one is unknown.
    """
    allowed = field_paths(schema)
    requested = {part.strip() for part in value.split(",") if part.strip()}
    if not requested:
        raise ValueError("name at least one field, or leave `fields` out for all of them")
    unknown = sorted(
        name for name in requested if not any(_selects(name, path) for path in allowed)
    )
    if unknown:
        raise ValueError(f"unknown fields {unknown}; choose from: {', '.join(allowed)}")
    return tuple(path for path in allowed if any(_selects(name, path) for name in requested))


def _selects(name: str, path: str) -> bool:
    return path == name or path.startswith(name + ".")


class FieldSelection(BaseModel):
    """The `fields` parameter on its own, for detail endpoints (see `ListQuery.fields`)."""

    model_config = ConfigDict(extra="forbid")

    # Set by each subclass: the response schema `fields` picks from.
    item_schema: ClassVar[type[BaseModel]]

    fields: str | None = Field(
        default=None,
        description="Comma-separated fields to return (e.g. `id,title,author.full_name`; "
        "`author` means all of its fields). All fields when left out.",
        examples=["id,title,author.full_name"],
    )

    @field_validator("fields")
    @classmethod
    def known_fields(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return ",".join(parse_field_selection(value, cls.item_schema))

    @property
    def selected(self) -> tuple[str, ...]:
        """The selected field paths, every field when `fields` was left out."""
        if self.fields is None:
            return field_paths(self.item_schema)
        return tuple(self.fields.split(","))

    def include(self) -> dict[str, Any] | None:
        """The selection as pydantic's `include=` argument (None: everything)."""
        if self.fields is None:
            return None
        include: dict[str, Any] = {}
        for path in self.selected:
            top, _, nested = path.partition(".")
            if nested:
                include.setdefault(top, {})[nested] = True
            else:
                include[top] = True
        return include


class ListQuery(FieldSelection):
    """Pagination, sorting and field selection; subclasses add `sort` and their filters.

    Two ways to page: `offset` (with the `total`), or `cursor` (keyset pagination: each
    page carries `next_cursor`, which stays fast however deep the page, skips the count
    and never repeats or skips a row when rows are added meanwhile).
    """

    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(default=0, ge=0, description="Rows to skip (not with `cursor`).")
    cursor: str | None = Field(
        default=None,
        max_length=512,
        description="`next_cursor` of the previous page, with the same `sort` and filters.",
    )
    # Redeclared by each subclass as a Literal of its allowed orders: `name` ascending,
    # `-name` descending.
    sort: str

    @model_validator(mode="after")
    def one_way_to_page(self) -> Self:
        if self.cursor is not None and self.offset:
            raise ValueError("use either `offset` or `cursor`, not both")
        return self

    def fingerprint(self) -> str:
        """Equal for equal queries: a cache key for the page they ask for."""
        return hashlib.blake2b(self.model_dump_json().encode(), digest_size=16).hexdigest()

    def filters(self) -> dict[str, Any]:
        """The filters the client set, by name."""
        return self.model_dump(exclude=set(ListQuery.model_fields), exclude_none=True)


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """One page of a collection. With `fields=`, each item holds only those fields."""

    items: list[ItemT]
    total: int | None = Field(description="Matching rows; null when paging by cursor.")
    limit: int
    offset: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
