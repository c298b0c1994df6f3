"""The jobs: what each one does, as plain async functions of a `JobContext`.

Each is safe to run on several workers at once and to run again: the outbox claims
with compare-and-set updates, and the maintenance jobs delete by conditions that hold
for a row or do not. `broker.py` registers them with the engine.
"""

from collections.abc import Awaitable, Callable
from datetime import timedelta

from app.models.base import utcnow
from app.models.outbox import OutboxStatus
from app.services import maintenance
from app.services.outbox_service import Handout
from app.worker.context import JobContext


async def relay_outbox(context: JobContext, enqueue: Callable[[Handout], Awaitable[None]]) -> int:
    """Hand the due outbox messages to `deliver_email` jobs; how many were handed out.

    A hand-off that never reaches a worker (the queue was lost) is handed out again when
    its lease ends.
    """
    async with context.session_factory() as db:
        handouts = await context.outbox.hand_out(db)
    for handout in handouts:
        await enqueue(handout)
    return len(handouts)


async def deliver_email(context: JobContext, handout: Handout) -> OutboxStatus | None:
    """One attempt at one outbox message (see `OutboxService.deliver`)."""
    return await context.outbox.deliver(
        context.session_factory, context.email_provider, context.sender, handout, context.cache
    )


async def delete_ended_sessions(context: JobContext) -> int:
    """Scheduled: sessions that ended longer ago than the retention; how many."""
    async with context.session_factory() as db:
        return await maintenance.delete_ended_sessions(db, context.settings)


async def sweep_orphaned_uploads(context: JobContext) -> int:
    """Scheduled: stored uploads no file row names, past the grace period; how many."""
    grace = timedelta(hours=context.settings.upload_orphan_grace_hours)
    async with context.session_factory() as db:
        swept = await maintenance.sweep_orphaned_uploads(db, context.storage, utcnow() - grace)
    return len(swept)


async def purge_sent_outbox(context: JobContext) -> int:
    """Scheduled: outbox messages sent (or expired unsent) longer ago than the retention;
    how many."""
    retention = timedelta(days=context.settings.outbox_retention_days)
    async with context.session_factory() as db:
        return await context.outbox.purge_finished(db, retention)
