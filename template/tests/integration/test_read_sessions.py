"""Read-only sessions (`ReadDbSession`): they read, never write, and go to the primary
while no replica is usable; a writer's mark sends their reads to the primary."""

import uuid

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from app.core.database import ReadOnlySessionError
from app.core.replicas import PRIMARY, ReplicaSet, read_source, writer_mark_key
from app.core.resources import Resources
from app.models import User
from tests.helpers import create_user, unique_email

# Nothing listens on port 1: connecting fails at once.
UNREACHABLE_REPLICA = "postgresql+asyncpg://app@127.0.0.1:1/app"


async def test_a_read_only_session_reads(resources: Resources) -> None:
    async with resources.session_factory() as db:
        user = await create_user(db, resources.password_hasher, email=unique_email())

    async with resources.replicas.read_session(recent_writer=False) as session:
        found = await session.scalar(select(User.email).where(User.id == user.id))

    assert found == user.email


async def test_a_change_flushed_on_a_read_only_session_raises(resources: Resources) -> None:
    async with resources.replicas.read_session(recent_writer=False) as session:
        session.add(User(email=unique_email(), hashed_password="x", full_name="Nobody"))

        with pytest.raises(ReadOnlySessionError, match="read-only session"):
            await session.flush()


async def test_an_update_on_a_read_only_session_raises(resources: Resources) -> None:
    async with resources.replicas.read_session(recent_writer=False) as session:
        with pytest.raises(ReadOnlySessionError, match="read-only session"):
            await session.execute(update(User).values(full_name="Changed"))


async def test_raw_sql_writes_on_a_read_only_session_are_refused_by_postgres(
    resources: Resources,
) -> None:
    if resources.settings.uses_sqlite:
        pytest.skip("READ ONLY transactions are PostgreSQL's")
    async with resources.replicas.read_session(recent_writer=False) as session:
        with pytest.raises(DBAPIError, match="read-only transaction"):
            await session.execute(text("DELETE FROM users"))


async def test_raw_sql_and_core_writes_on_a_read_only_session_are_refused(
    resources: Resources,
) -> None:
    """What the ORM's check cannot see, the database refuses: a raw UPDATE, and a Core
    one on the session's connection. PostgreSQL: the transaction is READ ONLY; SQLite:
    the connection is `PRAGMA query_only` (raised as `ReadOnlySessionError`)."""
    async with resources.session_factory() as db:
        user = await create_user(db, resources.password_hasher, email=unique_email())
    refusal: type[Exception] = (
        ReadOnlySessionError if resources.settings.uses_sqlite else DBAPIError
    )
    raw = text("UPDATE users SET full_name = 'Raw' WHERE email = :email")

    async with resources.replicas.read_session(recent_writer=False) as session:
        with pytest.raises(refusal, match=r"read-only|readonly"):
            await session.execute(raw, {"email": user.email})
    async with resources.replicas.read_session(recent_writer=False) as session:
        connection = await session.connection()
        with pytest.raises(refusal, match=r"read-only|readonly"):
            await connection.execute(
                update(User).where(User.id == user.id).values(full_name="Core")
            )
    # The read-write session writes on the same pool afterwards.
    async with resources.session_factory() as db:
        await db.execute(update(User).where(User.id == user.id).values(full_name="Written"))
        await db.commit()
        name = await db.scalar(select(User.full_name).where(User.id == user.id))

    assert name == "Written"


async def test_without_replicas_reads_go_to_the_primary(resources: Resources) -> None:
    settings = resources.settings.model_copy(update={"database_replica_urls": []})
    replicas = ReplicaSet(settings, resources.engine, resources.cache)
    writer = uuid.uuid4()
    await replicas.start()  # nothing to check
    await replicas.note_write(writer)  # nothing to note
    async with replicas.read_session(recent_writer=False) as session:
        source = read_source(session)
    await replicas.close()

    assert not replicas.configured
    assert source.target == PRIMARY
    assert source.staleness_seconds == 0
    assert await resources.cache.get(writer_mark_key(writer)) is None


async def test_an_unreachable_replica_is_skipped_and_a_writer_is_marked(
    resources: Resources,
) -> None:
    settings = resources.settings.model_copy(
        update={
            "database_replica_urls": [UNREACHABLE_REPLICA],
            "database_replica_connect_timeout_seconds": 1.0,
        }
    )
    replicas = ReplicaSet(settings, resources.engine, resources.cache)
    writer = uuid.uuid4()
    try:
        await replicas.start()
        [report] = replicas.report()
        await replicas.note_write(writer)
        await replicas.note_write(None)  # anonymous: nothing to mark
        async with replicas.read_session(recent_writer=False) as session:
            source = read_source(session)
    finally:
        await replicas.close()

    assert report.name == "127.0.0.1:1/app"
    assert report.state == "down"
    assert source.target == PRIMARY  # no replica usable
    mark = await resources.cache.get(writer_mark_key(writer))
    assert mark is not None
    assert replicas.read_your_writes_seconds == 2 * (
        settings.database_replica_max_lag_seconds + settings.database_replica_check_interval_seconds
    )
