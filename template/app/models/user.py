from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import BaseModel

if TYPE_CHECKING:
    from app.models.article import Article
    from app.models.rbac import Role


class User(BaseModel):
    __tablename__ = "users"
    # Serves the user list's default order (newest first, id breaking ties).
    __table_args__ = (Index("ix_users_created_at_id", "created_at", "id"),)

    # Stored lower-cased by the service, so the unique index is case-insensitive in effect.
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    hashed_password: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    is_verified: Mapped[bool] = mapped_column(default=False)

    articles: Mapped[list[Article]] = relationship(
        back_populates="author", lazy="raise", passive_deletes=True
    )
    roles: Mapped[list[Role]] = relationship(
        secondary="user_roles", lazy="raise", passive_deletes=True
    )
