import uuid
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
    field_validator,
)

from app.core.rbac import PERMISSIONS

# Role names appear in URLs, logs and settings (DEFAULT_ROLE): keep them plain.
RoleName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{1,49}$")]
RoleDescription = Annotated[str, Field(max_length=255)]


class FeatureResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    description: str


class ActionResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    description: str


class PermissionResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str = Field(examples=["articles:publish"])

    @computed_field  # type: ignore[prop-decorator]
    @property
    def feature(self) -> str:
        return self.name.partition(":")[0]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def action(self) -> str:
        return self.name.partition(":")[2]


class RoleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RoleName
    description: RoleDescription | None = None
    permissions: list[str] = Field(default=[], examples=[["articles:read"]])

    @field_validator("permissions")
    @classmethod
    def known_permissions(cls, permissions: list[str]) -> list[str]:
        unknown = sorted(set(permissions) - PERMISSIONS)
        if unknown:
            raise ValueError(f"unknown permissions: {', '.join(unknown)}")
        return sorted(set(permissions))


class RoleUpdate(BaseModel):
    """Rename a role or change its description (system roles keep their name)."""

    model_config = ConfigDict(extra="forbid")

    name: RoleName | None = None
    description: RoleDescription | None = None

    @field_validator("name")
    @classmethod
    def name_not_null(cls, name: str | None) -> str | None:
        if name is None:
            raise ValueError("name cannot be null; omit it to keep the current name")
        return name


class RoleSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str


class RoleResponse(RoleSummary):
    description: str | None
    is_system: bool
    permissions: list[str]

    @field_validator("permissions", mode="before")
    @classmethod
    def permission_names(cls, value: Any) -> Any:
        # From the ORM a role's permissions are rows; the API shows them by name.
        if isinstance(value, Iterable) and not isinstance(value, str):
            return sorted(getattr(item, "name", item) for item in value)
        return value
