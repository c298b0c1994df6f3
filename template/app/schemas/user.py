import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field

# bcrypt sees a fixed-size pre-hash (see app.core.security), so long passphrases are fine;
# the upper bound only keeps request bodies sane.
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    password: str = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)
    full_name: str | None = Field(default=None, max_length=255)


class UserUpdate(BaseModel):
    """What users may change about themselves: never roles, activation or verification."""

    model_config = ConfigDict(extra="forbid")

    full_name: str | None = Field(default=None, max_length=255)


class UserResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: EmailStr
    full_name: str | None
    is_active: bool
    is_verified: bool
    created_at: datetime


class UserSnapshot(BaseModel):
    """What an authenticated request knows about its user; cached, so no query per request."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: uuid.UUID
    email: str
    full_name: str | None
    is_active: bool
    is_verified: bool
    created_at: datetime


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
    new_password: str = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)
