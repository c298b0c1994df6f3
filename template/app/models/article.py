import enum
import uuid
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import BaseModel
from app.models.user import User


class ArticleStatus(enum.StrEnum):
    """Where an article is: a draft (visible to its author and editors) or published."""

    DRAFT = "draft"
    PUBLISHED = "published"


class Article(BaseModel):
    __tablename__ = "articles"
    __table_args__ = (
        # Serves the default listing: newest first, filtered by status.
        Index("ix_articles_status_created_at", "status", "created_at"),
        # Serves the default order of the full list (editors see every status) and its
        # keyset pages: newest first, id breaking ties.
        Index("ix_articles_created_at_id", "created_at", "id"),
    )

    title: Mapped[str] = mapped_column(String(255))
    content: Mapped[str | None] = mapped_column(Text)
    status: Mapped[ArticleStatus] = mapped_column(
        Enum(
            ArticleStatus,
            native_enum=False,
            length=20,
            validate_strings=True,
            values_callable=lambda members: [member.value for member in members],
        ),
        default=ArticleStatus.DRAFT,
    )
    published_at: Mapped[datetime | None]
    author_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )

    author: Mapped[User] = relationship(back_populates="articles", lazy="raise")
