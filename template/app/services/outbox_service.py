"""The transactional outbox for email: written with the change, delivered by worker jobs.

A message is added to the caller's session (`add`) and commits or rolls back with the
change that causes it: a rolled-back registration leaves no message behind. Afterwards:

1. the relay (`hand_out`, a scheduled job, also kicked after each commit) claims due
   messages and gives each to a `deliver` job, pushing their `next_attempt_at` one
   lease ahead: a hand-off lost with its worker or its queue is handed out again then;
2. `deliver` claims one attempt with a compare-and-set on `attempts` (a job handed out
   twice, or late, finds the count moved and does nothing), sends through the email
   provider, and records the outcome: sent (bodies erased), a failure to retry after an
   exponential backoff with full jitter, or dead once `outbox_max_attempts` are spent
   or at once for a refusal every attempt would get (`PermanentDeliveryError`); a
   message whose link no longer works is not sent but `expired` (`LinkToken`);
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
from sqlalchemy import CursorResult, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from app.core.cache import Cache
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
from app.services import one_time_tokens
from app.services.one_time_tokens import TokenPurpose

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
# Its link's token stopped working: used, replaced by a newer one, or revoked (the
# account erased, every session ended); the one-time token store says so, not the outbox.
LINK_DEAD_ERROR = "its link stopped working before it could be sent"
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


@dataclass(frozen=True, slots=True)
class LinkToken:
    """The one-time token a message's link carries: what for, its digest (never the
    token: the bodies hold that, and are erased once sent; None: not checked with the
    token store) and when it expires."""

    purpose: TokenPurpose
    digest: str | None
    expires_at: datetime


def _lives_on(now: datetime) -> ColumnElement[bool]:
    """The message carries no link, or one with `LINK_MARGIN` left at `now`."""
    return or_(OutboxMessage.expires_at.is_(None), OutboxMessage.expires_at > now + LINK_MARGIN)


async def _link_works(cache: Cache, message: OutboxMessage) -> bool:
    """Whether the token store still accepts the message's link (true without one). With
    the store unreachable the link is taken to work: a stale link, at worst, against an
    email lost."""
    if message.link_purpose is None or message.link_digest is None:
        return True
    try:
        return await one_time_tokens.works(
            cache, TokenPurpose(message.link_purpose), message.link_digest
        )
    except Exception:  # whatever the store's failure, the message is worth sending
        logger.warning("email_link_check_unavailable", message_id=str(message.id), exc_info=True)
        return True


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
        link: LinkToken | None = None,
    ) -> OutboxMessage:
        """Add a message to `db`'s transaction; it exists once (and if) the caller commits.

        A message with a `link` is not sent once its token has less than `LINK_MARGIN`
        left, nor once the token store no longer accepts it (`OutboxStatus.EXPIRED`).
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
            link_purpose=link.purpose if link else None,
            link_digest=link.digest if link else None,
            expires_at=link.expires_at if link else None,
        )
        db.add(message)
        return message

    async def hand_out(self, db: AsyncSession, limit: int | None = None) -> list[Handout]:
        """Claim up to `limit` due messages (oldest first) for delivery, and commit.

        Due: pending, `next_attempt_at` passed, no attempt in hand. Each claimed message's
        `next_attempt_at` moves one lease ahead, so relays running at once (several
        workers) never hand the same message twice: PostgreSQL skips the rows another
        relay has locked, SQLite runs one writer at a time. First, in batches of the same
        size, it ends the waiting messages whose link has run out and dead-letters those
        whose attempts are spent; their outcomes are counted once the transaction commits.
        """
        now = utcnow()
        batch = limit or self.settings.outbox_relay_batch_size
        expired = await self._lock_and_update(
            db,
            batch,
            (self._waiting(now), OutboxMessage.expires_at <= now + LINK_MARGIN),
            status=OutboxStatus.EXPIRED,
            last_error=EXPIRED_ERROR,
            html_body="",
            text_body="",
        )
        maximum = self.settings.outbox_max_attempts
        dead = await self._lock_and_update(
            db,
            batch,
            (*self._due(now), OutboxMessage.attempts >= maximum),
            status=OutboxStatus.DEAD,
            last_error=f"{UNFINISHED_ATTEMPTS_ERROR} ({maximum} attempts, the last"
            " one's worker died or outlived its lease)",
        )
        due = (
            select(OutboxMessage.id)
            .where(*self._due(now), self._attempts_left(), _lives_on(now))
            .order_by(OutboxMessage.next_attempt_at)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        claimed = await db.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_(due.scalar_subquery()),
                *self._due(now),
                self._attempts_left(),
                _lives_on(now),  # a later run ends the ones past this batch
            )
            .values(next_attempt_at=now + self.lease)
            .returning(OutboxMessage.id, OutboxMessage.attempts)
            .execution_options(synchronize_session=False)
        )
        handouts = [Handout(message_id, attempts) for message_id, attempts in claimed.all()]
        await db.commit()
        for message_id, template in expired:
            OUTBOX_OUTCOMES.labels(outcome="expired").inc()
            logger.warning("email_link_expired_unsent", template=template, message_id=message_id)
        for message_id, template in dead:
            OUTBOX_OUTCOMES.labels(outcome="dead").inc()
            logger.error(
                "email_dead_lettered_without_outcome", template=template, message_id=message_id
            )
        return handouts

    @staticmethod
    async def _lock_and_update(
        db: AsyncSession, batch: int, where: tuple[ColumnElement[bool], ...], **values: object
    ) -> list[tuple[str, str]]:
        """Set `values` on up to `batch` rows matching `where` that no other transaction
        holds (`SKIP LOCKED`: relays at once never wait on each other's rows, so they
        cannot deadlock); the (id, template) of each."""
        rows = (
            select(OutboxMessage.id)
            .where(*where)
            .order_by(OutboxMessage.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        updated = await db.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(rows.scalar_subquery()), *where)
            .values(locked_until=None, **values)
            .returning(OutboxMessage.id, OutboxMessage.template)
            .execution_options(synchronize_session=False)
        )
        return [(str(message_id), template) for message_id, template in updated.all()]

    @classmethod
    def _waiting(cls, now: datetime) -> ColumnElement[bool]:
        """Due, or dead (no retry can help a message whose link ran out): not in hand."""
        return or_(
            and_(*cls._due(now)),
            and_(
                OutboxMessage.status == OutboxStatus.DEAD,
                or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until <= now),
            ),
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
        cache: Cache,
    ) -> OutboxStatus | None:
        """Make attempt `handout.attempt + 1` at the message; its status afterwards, or None
        when the attempt was not this job's to make (made already, or in another's hands).

        A message whose link's token no longer works (`cache` holds the tokens) is not
        sent: it is expired. The database connection is handed back while the provider
        sends.
        """
        async with session_factory() as db:
            message = await self._claim(db, handout)
            if message is None:
                OUTBOX_OUTCOMES.labels(outcome="skipped").inc()
                return None
            await db.commit()
        if not await _link_works(cache, message):
            async with session_factory() as db:
                await self._end_unsent(db, message, LINK_DEAD_ERROR)
                await db.commit()
            OUTBOX_OUTCOMES.labels(outcome="expired").inc()
            logger.warning(
                "email_link_dead_unsent", template=message.template, message_id=str(message.id)
            )
            return OutboxStatus.EXPIRED
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

    @staticmethod
    async def _end_unsent(db: AsyncSession, message: OutboxMessage, reason: str) -> None:
        await db.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id, OutboxMessage.attempts == message.attempts)
            .values(
                status=OutboxStatus.EXPIRED,
                last_error=reason,
                locked_until=None,
                html_body="",
                text_body="",
            )
        )

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
                _lives_on(now),  # a job that waited past the link's end: the relay ends it
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
            OutboxMessage.status == OutboxStatus.DEAD, _lives_on(utcnow())
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
