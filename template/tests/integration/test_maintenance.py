"""The scheduled maintenance jobs delete exactly what they should, also two at once."""

import asyncio
import uuid
from datetime import datetime, timedelta

import anyio
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.resources import Resources
from app.models.auth_session import AuthSession
from app.models.base import utcnow
from app.models.file import File
from app.models.outbox import OutboxMessage, OutboxStatus
from app.services.maintenance import sweep_orphaned_uploads
from app.services.outbox_service import OutboxService
from app.storage.base import Storage
from app.worker.broker import DELETE_ENDED_SESSIONS, PURGE_SENT_OUTBOX, SWEEP_ORPHANED_UPLOADS
from tests.helpers import create_user
from tests.jobs import app_broker


async def run_twice_at_once(app: FastAPI, job: str) -> None:
    """The job as two workers run it when their schedules meet."""
    task = app_broker(app).find_task(job)
    assert task is not None
    await asyncio.gather(task.kiq(), task.kiq())


def session_row(user_id: uuid.UUID, now: datetime, **times: timedelta | None) -> AuthSession:
    """A session whose times are `now` minus the given ages (last used now unless given)."""

    def ago(name: str, default: timedelta | None) -> datetime | None:
        age = times.get(name, default)
        return None if age is None else now - age

    return AuthSession(
        id=uuid.uuid4(),
        user_id=user_id,
        secret_hash="0" * 64,
        current_jti=uuid.uuid4().hex,
        last_used_at=ago("last_used", timedelta(0)),
        expires_at=ago("expires", -timedelta(days=10)),
        revoked_at=ago("revoked", None),
    )


async def test_sessions_ended_longer_ago_than_the_retention_are_deleted(
    app: FastAPI, db_session: AsyncSession, resources: Resources
) -> None:
    settings, now = resources.settings, utcnow()
    past_retention = timedelta(days=settings.session_retention_days, hours=1)
    within_retention = timedelta(days=settings.session_retention_days) - timedelta(hours=1)
    idle = timedelta(hours=settings.session_idle_timeout_hours)
    user = await create_user(db_session, resources.password_hasher)
    rows = {
        "active": session_row(user.id, now),
        "expired long ago": session_row(user.id, now, expires=past_retention),
        "expired lately": session_row(user.id, now, expires=within_retention),
        "revoked long ago": session_row(user.id, now, revoked=past_retention),
        "revoked lately": session_row(user.id, now, revoked=within_retention),
        "idle long ago": session_row(user.id, now, last_used=idle + past_retention),
        "idle lately": session_row(user.id, now, last_used=idle + within_retention),
    }
    db_session.add_all(rows.values())
    await db_session.commit()

    await run_twice_at_once(app, DELETE_ENDED_SESSIONS)

    left = set(await db_session.scalars(select(AuthSession.id)))
    kept = {name for name, row in rows.items() if row.id in left}
    assert kept == {"active", "expired lately", "revoked lately", "idle lately"}


async def test_stored_uploads_no_file_names_are_swept_after_the_grace_period(
    db_session: AsyncSession, resources: Resources, storage: Storage
) -> None:
    user = await create_user(db_session, resources.password_hasher)
    prefix = f"sweep-{uuid.uuid4().hex}"
    kept, orphan, recent = f"{prefix}/kept", f"{prefix}/orphan", f"{prefix}/recent"
    for key in (kept, orphan):
        await storage.upload(b"bytes", key, "text/plain")
    db_session.add(
        File(
            owner_id=user.id,
            key=kept,
            original_name="kept.txt",
            size=5,
            content_type="text/plain",
            checksum_sha256="0" * 64,
        )
    )
    await db_session.commit()
    await anyio.sleep(1.1)  # S3 keeps LastModified to the second
    cutoff = utcnow()
    await storage.upload(b"bytes", recent, "text/plain")

    async def sweep() -> list[str]:
        async with resources.session_factory() as db:
            return await sweep_orphaned_uploads(db, storage, cutoff)

    first, second = await asyncio.gather(sweep(), sweep())

    swept = set(first) | set(second)
    assert orphan in swept
    assert not {kept, recent} & swept
    stored = await _stored(storage)
    assert orphan not in stored
    assert {kept, recent} <= stored


async def test_the_scheduled_sweep_spares_uploads_younger_than_the_grace(
    app: FastAPI, resources: Resources, storage: Storage
) -> None:
    key = f"sweep-{uuid.uuid4().hex}/fresh-orphan"
    await storage.upload(b"bytes", key, "text/plain")

    await run_twice_at_once(app, SWEEP_ORPHANED_UPLOADS)

    assert key in await _stored(storage)


async def _stored(storage: Storage) -> set[str]:
    return set(await storage.keys_written_before(utcnow() + timedelta(minutes=1)))


async def test_finished_outbox_messages_are_purged_after_the_retention(
    app: FastAPI, db_session: AsyncSession, resources: Resources
) -> None:
    """Sent ones by when they were sent; expired ones (never sent) by when they expired."""
    settings, now = resources.settings, utcnow()
    outbox = OutboxService(settings)
    retention = timedelta(days=settings.outbox_retention_days)
    long_ago, lately = now - retention - timedelta(hours=1), now - retention + timedelta(hours=1)
    cases = {
        "sent long ago": (OutboxStatus.SENT, long_ago),
        "sent lately": (OutboxStatus.SENT, lately),
        "expired long ago": (OutboxStatus.EXPIRED, long_ago),
        "expired lately": (OutboxStatus.EXPIRED, lately),
        "pending": (OutboxStatus.PENDING, None),
        "dead": (OutboxStatus.DEAD, None),
    }
    messages = {}
    for name, (status, finished_at) in cases.items():
        message = outbox.add(
            db_session,
            template="welcome",
            to_email="a@example.com",
            subject=name,
            html_body="",
            text_body="",
        )
        message.status = status
        message.created_at = now - retention * 2
        if status is OutboxStatus.SENT:
            message.sent_at = finished_at
        message.updated_at = finished_at or message.created_at
        messages[name] = message
    await db_session.commit()

    await run_twice_at_once(app, PURGE_SENT_OUTBOX)

    left = set(await db_session.scalars(select(OutboxMessage.subject)))
    assert left == {"sent lately", "expired lately", "pending", "dead"}
