"""Async SQLAlchemy engine and session factory.

One `AsyncSession` per request comes from the `get_db` dependency in
`app.routes.deps`. Sessions do not expire objects on commit, and relationships
are declared `lazy="raise"`, so async code never triggers a hidden lazy load:
what a response needs is loaded up front with `selectinload`/`joinedload`.
"""

import time

from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from app.core.config import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    if settings.uses_sqlite:
        engine = create_async_engine(settings.database_url, echo=settings.database_echo)
        event.listen(engine.sync_engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    engine = create_async_engine(
        settings.database_url,
        echo=settings.database_echo,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout,
        pool_recycle=settings.database_pool_recycle,
    )
    ping_if_idle(engine, settings.database_ping_after_idle_seconds)
    return engine


def ping_if_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Check a pooled connection before use once it has been idle for `idle_seconds`.

    A connection a database restart dropped is then replaced, and the pool with it,
    instead of failing a request. SQLAlchemy's `pool_pre_ping` checks on every checkout:
    with asyncpg that is three round trips (BEGIN, a query, ROLLBACK), a fifth of the
    CPU of a `POST /articles` (measured). A connection given back moments ago has just
    proved itself; a restart under load fails only the requests then in flight (503),
    after which SQLAlchemy replaces every older connection.
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def note_idle_since(_: DBAPIConnection | None, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def ping_after_idle(
        dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _: PoolProxiedConnection
    ) -> None:
        idle_since = record.info.get("idle_since")  # none yet: a new connection
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool replaces this connection and every older one, then retries.
            raise InvalidatePoolError(f"idle connection failed its ping: {error!r}") from error


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def _enable_sqlite_foreign_keys(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
    # SQLite ignores foreign keys (and so ON DELETE CASCADE) unless asked per connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
