import uuid
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    computed_field,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from app.core.rbac import PERMISSIONS
from app.schemas.request import RequestModel, omit_default

# Role names appear in URLs, logs and settings (DEFAULT_ROLE): keep them plain.
RoleName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{1,49}$")]
RoleDescription = Annotated[str, Field(max_length=255)]
# A permission name, `feature:action`, from the catalog in `app.core.rbac`.
PermissionName = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "enum": sorted(PERMISSIONS),
            "description": "A permission, `feature:action` (`feature:admin` implies the rest).",
        }
    ),
]


# How many unknown permission names an error message names.
UNKNOWN_NAMED = 5


class FeatureResponse(BaseModel):
    """A feature of the service that permissions are about (`articles`)."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    description: str


class ActionResponse(BaseModel):
    """An action a permission allows on a feature (`read`)."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    description: str


class PermissionResponse(BaseModel):
    """A permission, `feature:action`, and its two parts."""

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


class RoleCreate(RequestModel):
    """A new role and the permissions it carries."""

    model_config = ConfigDict(extra="forbid")

    name: RoleName
    description: RoleDescription | None = None
    permissions: list[PermissionName] = Field(default=[], examples=[["articles:read"]])

    @field_validator("permissions")
    @classmethod
    def known_permissions(cls, permissions: list[str]) -> list[str]:
        unknown = sorted(set(permissions) - PERMISSIONS)
        if unknown:
            # The caller's input sizes the message: name a few, count the rest.
            named = ", ".join(repr(name[:64]) for name in unknown[:UNKNOWN_NAMED])
            more = len(unknown) - UNKNOWN_NAMED
            counted = f" and {more} more" if more > 0 else ""
            raise ValueError(f"unknown permissions: {named}{counted}")
        return sorted(set(permissions))


class RoleUpdate(RequestModel):
    """Rename a role or change its description (system roles keep their name)."""

    model_config = ConfigDict(extra="forbid")

    # Not nullable in the document: null is refused below (omit the name to keep it).
    name: RoleName | SkipJsonSchema[None] = Field(default=None, json_schema_extra=omit_default)
    description: RoleDescription | None = None

    @field_validator("name")
    @classmethod
    def name_not_null(cls, name: str | None) -> str | None:
        if name is None:
            raise ValueError("name cannot be null; omit it to keep the current name")
        return name


class RoleSummary(BaseModel):
    """A role, by id and name."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str


class RoleResponse(RoleSummary):
    """A role with its description and permissions."""

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
