"""Scheduled clean-up of data that only grows: ended sessions, orphaned uploads.

Each operation is a delete by a condition that holds for a row or an object or does
not, so runs on several workers at once delete each thing once and nothing else: on
PostgreSQL a second DELETE waits for the first's row locks, then finds those rows
gone; deleting a storage object that is already gone is not an error. (Sent and expired
outbox messages are purged by `OutboxService.purge_finished`.)
"""

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.models.auth_session import AuthSession
from app.models.base import utcnow
from app.models.file import File
from app.storage.base import Storage

# Keys checked against the database per query.
KEY_BATCH = 500


async def delete_ended_sessions(
    db: AsyncSession, settings: Settings, now: datetime | None = None
) -> int:
    """Delete sessions that ended more than SESSION_RETENTION_DAYS ago: revoked, past their
    absolute expiry, or idle past the timeout (their tokens can no longer be refreshed).
    How many were deleted. Commits."""
    cutoff = (now or utcnow()) - timedelta(days=settings.session_retention_days)
    idle = timedelta(hours=settings.session_idle_timeout_hours)
    deleted = await db.execute(
        delete(AuthSession)
        .where(
            or_(
                AuthSession.revoked_at < cutoff,
                AuthSession.expires_at < cutoff,
                AuthSession.last_used_at < cutoff - idle,
            )
        )
        .execution_options(synchronize_session=False)
    )
    await db.commit()
    return cast(CursorResult[tuple[()]], deleted).rowcount


async def sweep_orphaned_uploads(
    db: AsyncSession, storage: Storage, written_before: datetime
) -> list[str]:
    """Delete stored objects written before `written_before` that no file row names
    (an upload whose row was deleted, or whose transaction never committed); the keys
    deleted. The grace period keeps the object of an upload still in progress."""
    orphans = []
    candidates = await storage.keys_written_before(written_before)
    for start in range(0, len(candidates), KEY_BATCH):
        batch = candidates[start : start + KEY_BATCH]
        named = set(await db.scalars(select(File.key).where(File.key.in_(batch))))
        orphans += [key for key in batch if key not in named]
    await db.rollback()  # reads only: the connection goes back before the deletes
    if orphans:
        # Raises `ObjectsNotDeletedError` for any left: the next run takes them up again.
        await storage.delete_many(orphans)
    return orphans
