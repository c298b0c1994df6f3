"""What every value a client sends must satisfy before it can reach the database.

Request schemas (bodies, query models) derive from `RequestModel`, whose one
validator checks every field's validated value, however deeply nested:

- text: no NUL character (PostgreSQL refuses U+0000 in `text`) and no unpaired
  surrogate (U+D800-U+DFFF cannot be encoded as UTF-8, which both asyncpg and SQLite
  need, nor sent to Redis);
- integers: within a signed 64-bit integer (`BIGINT`, and SQLite's `INTEGER`);
- floats: finite (Python's JSON decoder accepts `NaN` and `Infinity`);
- datetimes: with a timezone, and still a valid datetime in UTC (asyncpg converts
  every aware value to UTC: `9999-12-31T23:59:59-23:59` would overflow there).

A value that breaks one is refused with a 422 naming the field, in the common error
shape, instead of failing in the driver with a 500. The same checks serve values
that reach SQL by another way (`storable`: a decoded pagination cursor, a form field).
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, field_validator
from pydantic_core import PydanticCustomError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def storable_text(text: str) -> str:
    """`text`, or PydanticCustomError when a database could not store it."""
    if "\x00" in text:
        raise PydanticCustomError("text_nul", "Text cannot contain the NUL character (U+0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "text_surrogate", "Text cannot contain an unpaired surrogate (U+D800-U+DFFF)"
        ) from None
    return text


def storable_int(number: int) -> int:
    """`number`, or PydanticCustomError outside a signed 64-bit integer."""
    if not INT64_MIN <= number <= INT64_MAX:
        raise PydanticCustomError(
            "int_out_of_range",
            "Integer must be between {min} and {max}",
            {"min": INT64_MIN, "max": INT64_MAX},
        )
    return number


def storable_datetime(moment: datetime) -> datetime:
    """`moment` if it has a timezone and converts to UTC, else PydanticCustomError."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise PydanticCustomError("timezone_aware", "Datetime must have a timezone")
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_out_of_range", "Datetime is out of range once converted to UTC"
        ) from None
    return moment


def storable(value: Any) -> Any:
    """`value` (validated: str, int, datetime, containers of them...) checked all through."""
    if isinstance(value, str):  # str enums included
        return storable_text(value)
    if isinstance(value, bool | Enum):
        return value
    if isinstance(value, int):
        return storable_int(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise PydanticCustomError("finite_number", "Number must be finite")
        return value
    if isinstance(value, datetime):
        return storable_datetime(value)
    if isinstance(value, list | tuple | set | frozenset):
        for item in value:
            storable(item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            storable(key)
            storable(item)
    # Nested request models checked their own fields; other types (UUID, date) are safe.
    return value


class RequestModel(BaseModel):
    """The base of every request schema (body or query model): see the module docstring."""

    @field_validator("*", mode="after")
    @classmethod
    def storable_value(cls, value: Any) -> Any:
        return storable(value)


def omit_default(schema: dict[str, Any]) -> None:
    """`json_schema_extra` of a PATCH field that may be omitted but not sent as null: its
    Python default (None) must not appear in the document as if null were allowed."""
    schema.pop("default", None)
