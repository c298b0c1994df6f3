import enum
from datetime import datetime

from sqlalchemy import Enum, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import BaseModel


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or in one)
    SENT = "sent"  # handed to the mail server or API: bodies erased, kept for the retention
    DEAD = "dead"  # the retry budget is spent: waits for an operator (`app.cli outbox retry`)
    # Its link stopped working (expired, or superseded by a newer one) before it was sent:
    # never sent, bodies erased, kept for the retention like a sent one.
    EXPIRED = "expired"


class OutboxMessage(BaseModel):
    """An email the service has committed to send: written in the transaction of the change
    that causes it (the transactional outbox), delivered by a worker job afterwards.

    `attempts` counts deliveries started, `failures` the ones that reported a failure:
    more attempts than failures on a pending message means an attempt died without an
    outcome (its worker was killed), so the next one may send a duplicate; the
    `idempotency_key` (the Message-ID, or the API's Idempotency-Key) lets receivers drop it.
    `locked_until` is the lease of the attempt in hand, `next_attempt_at` when the relay
    hands the message to a worker (again).
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        # The relay's query: due pending messages, oldest first.
        Index("ix_outbox_messages_status_next_attempt_at", "status", "next_attempt_at"),
    )

    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    template: Mapped[str] = mapped_column(String(64))
    to_email: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(255))
    html_body: Mapped[str] = mapped_column(Text)
    text_body: Mapped[str] = mapped_column(Text)
    status: Mapped[OutboxStatus] = mapped_column(
        Enum(
            OutboxStatus,
            native_enum=False,
            length=16,
            values_callable=lambda statuses: [status.value for status in statuses],
        ),
        default=OutboxStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(default=0)
    failures: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    # The one-time token the message's link carries, if any (`LinkToken`): its purpose
    # and digest (the token store says whether it still works) and when it expires.
    link_purpose: Mapped[str | None] = mapped_column(String(32))
    link_digest: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime | None]
