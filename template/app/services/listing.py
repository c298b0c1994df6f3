"""List endpoints in SQL: field selection, filters, sorting and both kinds of paging.

A resource declares once, in its service, how its list maps onto SQL (a `Listing`):
which column serves each response field, which join a nested field needs, which
column each sort order uses and which condition each filter adds. `Listing.page`
then runs one statement per page, whatever its size: it selects only the columns
asked for, joins only what those need, and returns plain rows ready to be
serialized as JSON, without building ORM objects or validating each item again.
"""

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from operator import attrgetter
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import (
    ColumnElement,
    Enum,
    FromClause,
    Select,
    TypeDecorator,
    Uuid,
    and_,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.exceptions import InvalidCursorException
from app.schemas.listing import ListQuery, field_paths
from app.schemas.request import storable

Filter = Callable[[Any], ColumnElement[bool]]


@dataclass(frozen=True)
class Join:
    """A table a nested field comes from, joined only when one of its fields is selected."""

    target: FromClause | type[Any]
    on: ColumnElement[bool]


@dataclass(frozen=True)
class RelatedList:
    """A list-valued field (a user's `roles`), loaded for the whole page by one more
    statement: `select(ids)` returns (owner id, *item columns) rows for those owners."""

    select: Callable[[list[Any]], Select[Any]]
    item_fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Position:
    """Where a keyset cursor resumes: the sort column, its direction, and the last row's
    value and id."""

    column: InstrumentedAttribute[Any]
    descending: bool
    value: Any
    id: Any


@dataclass(frozen=True)
class Listing:
    query: type[ListQuery]
    id_column: InstrumentedAttribute[Any]
    # Response field path ("title", "author.full_name") -> the column that holds it.
    columns: Mapping[str, InstrumentedAttribute[Any]]
    # Sort name (without the "-") -> column; the id breaks ties, so orders are total.
    sorts: Mapping[str, InstrumentedAttribute[Any]]
    # Filter name (a field of `query`) -> the condition it adds for the client's value.
    filters: Mapping[str, Filter] = field(default_factory=dict)
    # Nested model name ("author") -> how to join the table its fields come from.
    joins: Mapping[str, Join] = field(default_factory=dict)
    # List-valued field name ("roles") -> how to load it for a page.
    related_lists: Mapping[str, RelatedList] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Catch a declaration that drifted from the schemas at import time, not in a request.
        fields = set(field_paths(self.query.item_schema))
        if fields != {*self.columns, *self.related_lists}:
            raise TypeError(f"columns and related_lists must map exactly {sorted(fields)}")
        filter_names = set(self.query.model_fields) - set(ListQuery.model_fields)
        if filter_names != set(self.filters):
            raise TypeError(f"filters must map exactly the query's filters {sorted(filter_names)}")

    async def page(
        self,
        db: AsyncSession,
        query: ListQuery,
        where: Sequence[ColumnElement[bool]] = (),
    ) -> dict[str, Any]:
        """One page as a JSON-ready dict: items, total (offset paging), next_cursor."""
        selected = [path for path in query.selected if path not in self.related_lists]
        descending = query.sort.startswith("-")
        sort_name = query.sort.removeprefix("-")
        sort_column = self.sorts[sort_name]
        conditions = [*where, *(self.filters[name](v) for name, v in query.filters().items())]
        if query.cursor is not None:
            if query.offset:
                raise InvalidCursorException("Use either `offset` or `cursor`, not both")
            conditions.append(self._after(self._decode(query.cursor, query.sort, sort_column)))

        statement: Select[Any] = (
            select(
                *(self.columns[path] for path in selected),
                sort_column,
                self.id_column,
            )
            .select_from(self.id_column.class_)
            .where(*conditions)
        )
        for name in dict.fromkeys(path.partition(".")[0] for path in selected if "." in path):
            statement = statement.join(self.joins[name].target, self.joins[name].on)
        counting = query.cursor is None
        if counting:
            # The total rides along in the same statement instead of a second query.
            statement = statement.add_columns(func.count().over())
        statement = (
            statement.order_by(*self._order(sort_column, descending))
            .limit(query.limit + 1)  # one more row tells whether a next page exists
            .offset(query.offset)
        )
        rows = (await db.execute(statement)).all()

        page_rows = rows[: query.limit]
        next_cursor = None
        if len(rows) > query.limit:
            last = page_rows[-1]
            next_cursor = self._encode(query.sort, last[len(selected)], last[len(selected) + 1])
        total = None
        if counting:
            total = rows[0][-1] if rows else await self._count_past_end(db, conditions, query)
        converters = [_json_converter(self.columns[path]) for path in selected]
        items = [_nest(selected, converters, row) for row in page_rows]
        for name in (path for path in query.selected if path in self.related_lists):
            await self._load_related_list(
                db, name, items, [row[len(selected) + 1] for row in page_rows]
            )
        return {
            "items": items,
            "total": total,
            "limit": query.limit,
            "offset": query.offset,
            "next_cursor": next_cursor,
        }

    async def _load_related_list(
        self, db: AsyncSession, name: str, items: list[dict[str, Any]], ids: list[Any]
    ) -> None:
        related = self.related_lists[name]
        owned: dict[Any, list[dict[str, Any]]] = {id_: [] for id_ in ids}
        if ids:
            for owner, *values in (await db.execute(related.select(ids))).all():
                owned[owner].append(dict(zip(related.item_fields, values, strict=True)))
        for item, id_ in zip(items, ids, strict=True):
            item[name] = owned[id_]

    async def _count_past_end(
        self, db: AsyncSession, conditions: list[ColumnElement[bool]], query: ListQuery
    ) -> int:
        # A page past the end has no row to carry the window count.
        if query.offset == 0:
            return 0
        count = select(func.count()).select_from(self.id_column.class_).where(*conditions)
        return await db.scalar(count) or 0

    def _order(self, sort_column: InstrumentedAttribute[Any], descending: bool) -> list[Any]:
        ordered = sort_column.desc() if descending else sort_column.asc()
        id_order = self.id_column.desc() if descending else self.id_column.asc()
        # Rows without a value come last in both directions, on every database.
        return [ordered.nulls_last() if _nullable(sort_column) else ordered, id_order]

    # Keyset pagination --------------------------------------------------------

    def _after(self, position: _Position) -> ColumnElement[bool]:
        """Rows strictly after `position` in the page order."""
        column, id_column = position.column, self.id_column
        if position.value is None:  # inside the trailing rows without a value
            return and_(column.is_(None), _beyond(id_column, position.id, position.descending))
        if not _nullable(column):
            # A row-value comparison an index on (column, id) can serve directly.
            # Typed literals: a tuple does not pass its columns' types on to its values.
            values = literal(position.value, column.type), literal(position.id, id_column.type)
            return _beyond(tuple_(column, id_column), tuple_(*values), position.descending)
        return or_(
            _beyond(column, position.value, position.descending),
            and_(column == position.value, _beyond(id_column, position.id, position.descending)),
            column.is_(None),
        )

    def _encode(self, sort: str, value: Any, id_: Any) -> str:
        payload = json.dumps([sort, _to_json(value), _to_json(id_)], separators=(",", ":"))
        return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")

    def _decode(self, cursor: str, sort: str, column: InstrumentedAttribute[Any]) -> _Position:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            decoded = json.loads(raw)
        except (ValueError, TypeError, binascii.Error) as error:
            raise InvalidCursorException() from error
        # Issued as [sort, value, id]: anything else (a JSON string of three characters
        # would unpack as well) was not issued here.
        if not (isinstance(decoded, list) and len(decoded) == 3 and isinstance(decoded[0], str)):
            raise InvalidCursorException()
        cursor_sort, value, id_ = decoded
        if cursor_sort != sort:
            raise InvalidCursorException(
                f"The cursor belongs to sort={cursor_sort}; keep the sort order while paging"
            )
        # Only a column that may hold NULL can have a page that ends on one.
        if value is None and not _nullable(column):
            raise InvalidCursorException()
        try:
            sort_value = None if value is None else _python_value(column, value)
            return _Position(
                column, sort.startswith("-"), sort_value, _python_value(self.id_column, id_)
            )
        except ValueError as error:  # pydantic's ValidationError, or a value `storable` refused
            raise InvalidCursorException() from error


def _beyond(left: Any, right: Any, descending: bool) -> ColumnElement[bool]:
    comparison: ColumnElement[bool] = left < right if descending else left > right
    return comparison


def _nullable(column: InstrumentedAttribute[Any]) -> bool:
    return bool(getattr(column.expression, "nullable", True))


def _to_json(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float) else str(value)


def _python_value(column: InstrumentedAttribute[Any], value: Any) -> Any:
    """A cursor's JSON value as the column's Python type, checked as a request's would be
    (`app.schemas.request`): a forged cursor cannot carry what the database refuses. Strict,
    as JSON: a value of another JSON type (`"12"` or `true` for a number) was not issued."""
    column_type = column.type
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    adapter = _adapter(column_type.python_type)
    return storable(adapter.validate_json(json.dumps(value), strict=True))


@cache
def _adapter(python_type: type[Any]) -> TypeAdapter[Any]:
    return TypeAdapter(python_type)


def _json_converter(column: InstrumentedAttribute[Any]) -> Callable[[Any], Any] | None:
    """How to make a column's values plain for JSON, if they need it.

    Drivers return subclasses (asyncpg's own UUID class, enum members) that the JSON
    encoder only recognizes on a slow path; as strings they cost a fraction of it.
    """
    column_type = column.type
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    if isinstance(column_type, Uuid):
        return str
    if isinstance(column_type, Enum) and column_type.enum_class is not None:
        return attrgetter("value")
    return None


def _nest(
    paths: Sequence[str], converters: Sequence[Callable[[Any], Any] | None], row: Sequence[Any]
) -> dict[str, Any]:
    """A row of selected columns as the item's JSON object (`author.id` -> nested)."""
    item: dict[str, Any] = {}
    for path, convert, value in zip(paths, converters, row, strict=False):
        if convert is not None and value is not None:
            value = convert(value)
        top, _, nested = path.partition(".")
        if nested:
            item.setdefault(top, {})[nested] = value
        else:
            item[path] = value
    return item
