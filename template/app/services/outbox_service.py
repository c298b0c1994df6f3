"""The transactional outbox for email: written with the change, delivered by worker jobs.

A message is added to the caller's session (`add`) and commits or rolls back with the
change that causes it: a rolled-back registration leaves no message behind. Afterwards:

1. the relay (`hand_out`, a scheduled job, also kicked after each commit) claims due
   messages and gives each to a `deliver` job, pushing their `next_attempt_at` one
   lease ahead: a hand-off lost with its worker or its queue is handed out again then;
2. `deliver` claims one attempt with a compare-and-set on `attempts` (a job handed out
   twice, or late, finds the count moved and does nothing), sends through the email
   provider, and records the outcome: sent (bodies erased), a failure to retry after an
   exponential backoff with full jitter, or dead once `outbox_max_attempts` are spent;
   an attempt that never reports (its worker died, or it outlived its lease) counts
   too: once the last one's lease ends without an outcome, the relay dead-letters the
   message instead of handing it out again (`UNFINISHED_ATTEMPTS_ERROR`);
3. an operator lists dead messages and retries them (`python -m app.cli outbox`).

The guarantee is at-least-once: a worker killed after the mail server accepted a
message but before the outcome was written leaves the attempt open, and the message is
sent again once its lease ends. That redelivery is counted (`outbox_uncertain_redeliveries_total`)
and carries the same Message-ID (SMTP) or Idempotency-Key (HTTP API): the message's
`idempotency_key`, by which receivers drop the duplicate. Retries and the backoff follow
"Exponential Backoff And Jitter" (AWS Architecture Blog, 2015).
"""

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import structlog
from sqlalchemy import CursorResult, and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from app.core.config import Settings
from app.core.metrics import OUTBOX_OUTCOMES, OUTBOX_UNCERTAIN_REDELIVERIES
from app.email.base import (
    EmailDeliveryError,
    EmailProvider,
    InvalidEmailError,
    PermanentDeliveryError,
)
from app.models.base import utcnow
from app.models.outbox import OutboxMessage, OutboxStatus

logger = structlog.stdlib.get_logger(__name__)

# What a failure leaves in `last_error`: enough to diagnose, never a whole page.
MAX_ERROR_LENGTH = 1000
# The `last_error` of a message whose every attempt was made and the last one never
# reported: a message that kills its worker (or always outlives its lease) would be
# retried forever otherwise.
UNFINISHED_ATTEMPTS_ERROR = "attempts used up without an outcome"
# The `last_error` of a message whose link stopped working before it could be sent
# (`OutboxStatus.EXPIRED`): sending it would only hand the user a link that fails.
EXPIRED_ERROR = "its link expired before it could be sent"
SUPERSEDED_ERROR = "a newer message with a link of the same purpose replaced it"
# A message is started only while its link has this long left: a send takes up to the
# provider's timeouts (SMTP: one per command), and the user needs time to open it.
LINK_MARGIN = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Handout:
    """A message given to a `deliver` job: its id and the attempt it may start."""

    message_id: uuid.UUID
    attempt: int


@dataclass(frozen=True, slots=True)
class OutboxCounts:
    pending: int
    dead: int
    oldest_pending_age_seconds: float  # 0 with nothing pending


@dataclass(frozen=True, slots=True)
class Sender:
    """Who every message is from."""

    email: str
    name: str


def backoff_seconds(failures: int, base: float, cap: float) -> float:
    """The wait after the `failures`-th failure (1, 2, ...): a uniformly random time
    between 0 and min(cap, base * 2^(failures - 1)) seconds ("full jitter", which spreads
    the retries of many messages that failed together)."""
    ceiling = min(cap, base * 2 ** min(failures - 1, 62))
    return random.uniform(0, ceiling)  # noqa: S311 - spreading retries, not a secret


def _link_works(now: datetime) -> ColumnElement[bool]:
    """The message carries no link, or one with `LINK_MARGIN` left at `now`."""
    return or_(OutboxMessage.expires_at.is_(None), OutboxMessage.expires_at > now + LINK_MARGIN)


def _superseded() -> ColumnElement[bool]:
    """A newer message carries a link of the same purpose to the same address."""
    newer = aliased(OutboxMessage)
    return exists().where(
        newer.to_email == OutboxMessage.to_email,
        newer.link_purpose == OutboxMessage.link_purpose,
        newer.created_at > OutboxMessage.created_at,
    )


class OutboxService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lease = timedelta(seconds=settings.outbox_lease_seconds)

    def add(
        self,
        db: AsyncSession,
        *,
        template: str,
        to_email: str,
        subject: str,
        html_body: str,
        text_body: str,
        link_purpose: str | None = None,
        expires_at: datetime | None = None,
    ) -> OutboxMessage:
        """Add a message to `db`'s transaction; it exists once (and if) the caller commits.

        A message with a link gives its one-time token's purpose and expiry: it is not
        sent once the link has less than `LINK_MARGIN` left, nor once a newer message
        with a link of the same purpose to the same address exists (`OutboxStatus.EXPIRED`).
        """
        message = OutboxMessage(
            id=uuid.uuid4(),
            idempotency_key=uuid.uuid4().hex,
            template=template,
            to_email=to_email,
            subject=subject,
            html_body=html_body,
            text_body=text_body,
            status=OutboxStatus.PENDING,
            attempts=0,
            failures=0,
            next_attempt_at=utcnow(),
            link_purpose=link_purpose,
            expires_at=expires_at,
        )
        db.add(message)
        return message

    async def hand_out(self, db: AsyncSession, limit: int | None = None) -> list[Handout]:
        """Claim up to `limit` due messages (oldest first) for delivery, and commit.

        Due: pending, `next_attempt_at` passed, no attempt in hand. Each claimed message's
        `next_attempt_at` moves one lease ahead, so relays running at once (several
        workers) never hand the same message twice: PostgreSQL skips the rows another
        relay has locked, SQLite runs one writer at a time.
        """
        now = utcnow()
        await self._expire_stale_links(db, now)
        await self._dead_letter_unfinished(db, now)
        due = (
            select(OutboxMessage.id)
            .where(*self._due(now), self._attempts_left())
            .order_by(OutboxMessage.next_attempt_at)
            .limit(limit or self.settings.outbox_relay_batch_size)
            .with_for_update(skip_locked=True)
        )
        claimed = await db.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_(due.scalar_subquery()),
                *self._due(now),
                self._attempts_left(),
            )
            .values(next_attempt_at=now + self.lease)
            .returning(OutboxMessage.id, OutboxMessage.attempts)
            .execution_options(synchronize_session=False)
        )
        handouts = [Handout(message_id, attempts) for message_id, attempts in claimed.all()]
        await db.commit()
        return handouts

    async def _dead_letter_unfinished(self, db: AsyncSession, now: datetime) -> None:
        """Dead-letter the due messages whose attempts are all spent: the last attempt's
        lease ended and it never recorded an outcome (`_record` dead-letters those that
        reported a failure)."""
        maximum = self.settings.outbox_max_attempts
        dead = await db.execute(
            update(OutboxMessage)
            .where(*self._due(now), OutboxMessage.attempts >= maximum)
            .values(
                status=OutboxStatus.DEAD,
                last_error=f"{UNFINISHED_ATTEMPTS_ERROR} ({maximum} attempts, the last"
                " one's worker died or outlived its lease)",
                locked_until=None,
            )
            .returning(OutboxMessage.id, OutboxMessage.template, OutboxMessage.attempts)
            .execution_options(synchronize_session=False)
        )
        for message_id, template, attempts in dead.all():
            OUTBOX_OUTCOMES.labels(outcome="dead").inc()
            logger.error(
                "email_dead_lettered_without_outcome",
                template=template,
                message_id=str(message_id),
                attempts=attempts,
            )

    async def _expire_stale_links(self, db: AsyncSession, now: datetime) -> None:
        """End, unsent, the messages waiting (due, or dead) whose link no longer works:
        expired (a message's retries can outlast a 30-minute reset link) or superseded
        by a newer one. Their bodies are erased, and a dead one leaves the dead letters,
        as no retry could help it."""
        waiting = or_(
            and_(*self._due(now)),
            and_(
                OutboxMessage.status == OutboxStatus.DEAD,
                or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until <= now),
            ),
        )
        for stale, reason in (
            (~_link_works(now), EXPIRED_ERROR),
            (_superseded(), SUPERSEDED_ERROR),
        ):
            expired = await db.execute(
                update(OutboxMessage)
                .where(waiting, OutboxMessage.link_purpose.is_not(None), stale)
                .values(
                    status=OutboxStatus.EXPIRED,
                    last_error=reason,
                    locked_until=None,
                    html_body="",
                    text_body="",
                )
                .returning(OutboxMessage.id, OutboxMessage.template)
                .execution_options(synchronize_session=False)
            )
            for message_id, template in expired.all():
                OUTBOX_OUTCOMES.labels(outcome="expired").inc()
                logger.warning(
                    "email_link_stale_unsent",
                    template=template,
                    message_id=str(message_id),
                    reason=reason,
                )

    def _attempts_left(self) -> ColumnElement[bool]:
        return OutboxMessage.attempts < self.settings.outbox_max_attempts

    @staticmethod
    def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
        return (
            OutboxMessage.status == OutboxStatus.PENDING,
            OutboxMessage.next_attempt_at <= now,
            or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until <= now),
        )

    async def deliver(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        provider: EmailProvider,
        sender: Sender,
        handout: Handout,
    ) -> OutboxStatus | None:
        """Make attempt `handout.attempt + 1` at the message; its status afterwards, or None
        when the attempt was not this job's to make (made already, or in another's hands).

        The database connection is handed back while the provider sends.
        """
        async with session_factory() as db:
            message = await self._claim(db, handout)
            if message is None:
                OUTBOX_OUTCOMES.labels(outcome="skipped").inc()
                return None
            await db.commit()
        failure: str | None = None
        permanent = False
        try:
            await provider.send_email(
                to_email=message.to_email,
                subject=message.subject,
                body=message.html_body,
                from_email=sender.email,
                from_name=sender.name,
                text_body=message.text_body,
                idempotency_key=message.idempotency_key,
            )
        except (PermanentDeliveryError, InvalidEmailError) as error:
            failure, permanent = str(error), True  # sending it again gets the same answer
        except EmailDeliveryError as error:
            failure = str(error)
        except Exception as error:
            # An unexpected error is a failed attempt too: the budget bounds it.
            logger.exception("email_delivery_error", message_id=str(message.id))
            failure = f"{type(error).__name__}: {error}"
        async with session_factory() as db:
            status = await self._record(db, message, failure, permanent=permanent)
            await db.commit()
        OUTBOX_OUTCOMES.labels(outcome=status.value if failure is None else "failed").inc()
        if status is OutboxStatus.DEAD:
            OUTBOX_OUTCOMES.labels(outcome="dead").inc()
        return status

    async def _claim(self, db: AsyncSession, handout: Handout) -> OutboxMessage | None:
        now = utcnow()
        claimed = await db.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == handout.message_id,
                OutboxMessage.status == OutboxStatus.PENDING,
                OutboxMessage.attempts == handout.attempt,
                self._attempts_left(),
                or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until <= now),
                _link_works(now),  # a job that waited past the link's end: the relay ends it
            )
            .values(attempts=OutboxMessage.attempts + 1, locked_until=now + self.lease)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[tuple[()]], claimed).rowcount != 1:
            return None
        message = await db.get(OutboxMessage, handout.message_id, populate_existing=True)
        if message is None:  # deleted meanwhile
            return None
        if message.attempts - 1 > message.failures:
            # An earlier attempt never reported: its worker died, maybe after sending.
            OUTBOX_UNCERTAIN_REDELIVERIES.inc()
            logger.warning(
                "email_redelivered_after_unfinished_attempt",
                message_id=str(message.id),
                attempt=message.attempts,
            )
        return message

    async def _record(
        self, db: AsyncSession, message: OutboxMessage, failure: str | None, *, permanent: bool
    ) -> OutboxStatus:
        now, settings = utcnow(), self.settings
        attempt = OutboxMessage.attempts == message.attempts
        if failure is None:
            await db.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message.id, attempt)
                # The bodies carry single-use links: erased once they have gone out.
                .values(
                    status=OutboxStatus.SENT,
                    sent_at=now,
                    locked_until=None,
                    html_body="",
                    text_body="",
                )
            )
            logger.info("email_sent", template=message.template, message_id=str(message.id))
            return OutboxStatus.SENT
        failures = message.failures + 1
        dead = permanent or message.attempts >= settings.outbox_max_attempts
        wait = backoff_seconds(
            failures, settings.outbox_retry_base_seconds, settings.outbox_retry_max_seconds
        )
        status = OutboxStatus.DEAD if dead else OutboxStatus.PENDING
        await db.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id, attempt)
            .values(
                status=status,
                failures=failures,
                last_error=failure[:MAX_ERROR_LENGTH],
                locked_until=None,
                next_attempt_at=now + timedelta(seconds=wait),
            )
        )
        logger.error(
            "email_delivery_failed",
            template=message.template,
            message_id=str(message.id),
            attempt=message.attempts,
            dead_lettered=dead,
            refused_for_good=permanent,
            error=failure,
        )
        return status

    # Operations ---------------------------------------------------------------

    async def counts(self, db: AsyncSession) -> OutboxCounts:
        """Pending and dead messages, and the age of the oldest pending one (the metrics)."""
        rows = await db.execute(
            select(
                OutboxMessage.status,
                func.count(),
                func.min(OutboxMessage.created_at),
            )
            .where(OutboxMessage.status != OutboxStatus.SENT)
            .group_by(OutboxMessage.status)
        )
        by_status = {status: (count, oldest) for status, count, oldest in rows.all()}
        pending, oldest = by_status.get(OutboxStatus.PENDING, (0, None))
        dead, _ = by_status.get(OutboxStatus.DEAD, (0, None))
        age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        return OutboxCounts(pending=pending, dead=dead, oldest_pending_age_seconds=max(age, 0.0))

    async def dead_letters(self, db: AsyncSession, limit: int = 100) -> Sequence[OutboxMessage]:
        """Dead messages, most recent first."""
        rows = await db.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == OutboxStatus.DEAD)
            .order_by(OutboxMessage.updated_at.desc())
            .limit(limit)
        )
        return rows.all()

    async def retry_dead(self, db: AsyncSession, message_ids: Sequence[uuid.UUID] | None) -> int:
        """Give dead messages (the given ones, or every one) a fresh retry budget, due now;
        how many. One whose link has expired stays dead: its user must ask again. Commits."""
        statement = update(OutboxMessage).where(
            OutboxMessage.status == OutboxStatus.DEAD, _link_works(utcnow())
        )
        if message_ids is not None:
            statement = statement.where(OutboxMessage.id.in_(message_ids))
        retried = await db.execute(
            statement.values(
                status=OutboxStatus.PENDING,
                attempts=0,
                failures=0,
                next_attempt_at=utcnow(),
                locked_until=None,
            ).execution_options(synchronize_session=False)
        )
        await db.commit()
        return cast(CursorResult[tuple[()]], retried).rowcount

    async def purge_finished(self, db: AsyncSession, older_than: timedelta) -> int:
        """Delete messages sent, or expired unsent, longer than `older_than` ago; how many.
        Commits."""
        cutoff = utcnow() - older_than
        purged = await db.execute(
            delete(OutboxMessage)
            .where(
                or_(
                    and_(OutboxMessage.status == OutboxStatus.SENT, OutboxMessage.sent_at < cutoff),
                    and_(
                        OutboxMessage.status == OutboxStatus.EXPIRED,
                        OutboxMessage.updated_at < cutoff,
                    ),
                )
            )
            .execution_options(synchronize_session=False)
        )
        await db.commit()
        return cast(CursorResult[tuple[()]], purged).rowcount
