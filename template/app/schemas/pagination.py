"""The list envelope every collection endpoint returns."""

from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


@dataclass(frozen=True, slots=True)
class PageParams:
    """A validated page request (see `Pagination` in app.routes.deps)."""

    limit: int = DEFAULT_PAGE_SIZE
    offset: int = 0


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    total: int
    limit: int
    offset: int
