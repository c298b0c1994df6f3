import uuid
from collections.abc import Iterable
from datetime import datetime
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.schemas.email_address import EmailAddress, StoredEmailAddress
from app.schemas.listing import DateTimeFilter, ListQuery
from app.schemas.rbac import RoleSummary
from app.schemas.request import RequestModel

# bcrypt sees a fixed-size pre-hash (see app.core.security), so long passphrases are fine;
# the upper bound only keeps request bodies sane.
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024


class UserCreate(RequestModel):
    """A new account: its address, password and name."""

    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    password: str = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)
    full_name: str | None = Field(default=None, max_length=255)


class UserUpdate(RequestModel):
    """What users may change about themselves: never roles, activation or verification."""

    model_config = ConfigDict(extra="forbid")

    full_name: str | None = Field(default=None, max_length=255)


class UserResponse(BaseModel):
    """A user as they see themselves."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: StoredEmailAddress
    full_name: str | None
    is_active: bool
    is_verified: bool
    created_at: datetime


class UserAdminResponse(UserResponse):
    """A user as administrators see them: with their roles."""

    roles: list[RoleSummary]


class UserListQuery(ListQuery):
    """`GET /users` parameters: the filters, orders and fields it allows."""

    item_schema = UserAdminResponse

    sort: Literal["created_at", "-created_at", "email", "-email"] = Field(
        default="-created_at", description="`-` for descending."
    )
    is_active: bool | None = Field(
        default=None, description="Only users who may log in (true) or who may not (false)."
    )
    is_verified: bool | None = Field(
        default=None, description="Only users who confirmed their address (true) or not (false)."
    )
    role: str | None = Field(default=None, max_length=50, description="Holds this role.")
    created_after: DateTimeFilter | None = Field(default=None, description="Created at or after.")
    created_before: DateTimeFilter | None = Field(default=None, description="Created before.")


class CurrentUserResponse(UserResponse):
    """Your own profile, with what you may do (clients use it to show or hide actions)."""

    roles: list[str]
    permissions: list[str]

    @field_validator("roles", "permissions", mode="before")
    @classmethod
    def sorted_names(cls, names: Iterable[str]) -> list[str]:
        return sorted(names)


class UserSnapshot(BaseModel):
    """What an authenticated request knows about its user; cached, so no query per request.

    `permissions` is the user's resolved permission set, checked by set lookups.
    `permissions_version` is the global version the snapshot was built under: once any
    role or grant changes, the version moves and every snapshot is rebuilt.
    """

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    email: str
    full_name: str | None
    is_active: bool
    is_verified: bool
    created_at: datetime
    roles: tuple[str, ...]
    permissions: frozenset[str]
    permissions_version: str

    @cached_property
    def profile_json(self) -> bytes:
        """The `CurrentUserResponse` body, serialized once per snapshot (snapshots are
        immutable, and the auth cache hands the same one to every request of the user)."""
        profile = CurrentUserResponse.model_validate(self, from_attributes=True)
        return profile.model_dump_json().encode()


class PasswordChange(RequestModel):
    """The current password, to confirm, and the new one."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
    new_password: str = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)


class AccountDeletion(BaseModel):
    """`DELETE /users/me` asks for the password again: erasure cannot be undone."""

    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
