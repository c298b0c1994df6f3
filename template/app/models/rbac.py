"""Access control tables: features, actions, the permissions pairing them, and roles.

Which rows exist is defined in `app.core.rbac`; these classes only hold the schema.
"""

import uuid

from sqlalchemy import Column, ForeignKey, String, Table, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, BaseModel

role_permissions = Table(
    "role_permissions",
    Base.metadata,
    Column("role_id", Uuid, ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    # Indexed for the reverse direction: which roles grant a permission.
    Column(
        "permission_id",
        Uuid,
        ForeignKey("permissions.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)

user_roles = Table(
    "user_roles",
    Base.metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    # Indexed for the reverse direction: who holds a role.
    Column(
        "role_id", Uuid, ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True, index=True
    ),
)


class Feature(BaseModel):
    __tablename__ = "features"

    name: Mapped[str] = mapped_column(String(50), unique=True)
    description: Mapped[str] = mapped_column(String(255))


class Action(BaseModel):
    __tablename__ = "actions"

    name: Mapped[str] = mapped_column(String(50), unique=True)
    description: Mapped[str] = mapped_column(String(255))


class Permission(BaseModel):
    __tablename__ = "permissions"
    __table_args__ = (UniqueConstraint("feature_id", "action_id"),)

    feature_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("features.id", ondelete="CASCADE"))
    action_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("actions.id", ondelete="CASCADE"), index=True
    )

    # A permission is known by its names, so they always load with it (small tables, one join).
    feature: Mapped[Feature] = relationship(lazy="joined", innerjoin=True)
    action: Mapped[Action] = relationship(lazy="joined", innerjoin=True)

    @property
    def name(self) -> str:
        return f"{self.feature.name}:{self.action.name}"


class Role(BaseModel):
    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(String(50), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    # The default roles of app.core.rbac: they cannot be renamed or deleted.
    is_system: Mapped[bool] = mapped_column(default=False)

    permissions: Mapped[list[Permission]] = relationship(
        secondary=role_permissions, lazy="raise", passive_deletes=True
    )
