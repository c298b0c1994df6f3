"""Readers' comments on articles."""

import uuid

from sqlalchemy import ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import BaseModel
from app.models.user import User


class Comment(BaseModel):
    __tablename__ = "comments"
    __table_args__ = (
        # Serves the one listing there is: an article's comments, oldest first.
        Index("ix_comments_article_id_created_at", "article_id", "created_at"),
    )

    body: Mapped[str] = mapped_column(Text)
    # Comments go with their article, and with their author's account.
    article_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    author_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )

    author: Mapped[User] = relationship(lazy="raise")
