"""Async SQLAlchemy engine and session factory.

One `AsyncSession` per request comes from the `get_db` dependency in
`app.routes.deps`. Sessions do not expire objects on commit, and relationships
are declared `lazy="raise"`, so async code never triggers a hidden lazy load:
what a response needs is loaded up front with `selectinload`/`joinedload`.
"""

import time
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no type information published
from sqlalchemy import event
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import InvalidatePoolError, OperationalError
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
        # asyncpg's own limits, on the client: a database that stops answering fails the
        # request (503) within the timeout budget instead of holding it (app/core/timeouts.py).
        connect_args={
            "timeout": settings.database_connect_timeout_seconds,
            "command_timeout": settings.database_statement_timeout_seconds,
        },
    )
    report_unreachable_as_operational(engine)
    report_timeouts_as_operational(engine)
    ping_if_idle(engine, settings.database_ping_after_idle_seconds)
    return engine


# Connecting failed because the server cannot be reached or is not taking connections
# now: a retry later may succeed. A wrong password or a missing database is not among
# them (no retry cures those: they stay errors).
UNREACHABLE = (
    OSError,  # an unresolvable host (socket.gaierror), a refused or unreachable port, a timeout
    asyncpg.CannotConnectNowError,  # the server is starting up or shutting down
    asyncpg.ConnectionDoesNotExistError,  # the server closed the connection while it opened
    asyncpg.InterfaceError,  # the connection closed under the driver ("connection is closed")
)


def report_unreachable_as_operational(engine: AsyncEngine) -> None:
    """Raise a database that cannot be reached while a connection opens as SQLAlchemy's
    `OperationalError`, as every error on an open connection already is.

    asyncpg raises its own and the socket's errors from `connect` (DNS fails while the
    database's container is gone; the port refuses while it restarts), and SQLAlchemy
    passes errors other than the DB-API's through unchanged: a request would answer 500
    instead of the 503 with Retry-After of a database outage
    (`app.exceptions.handlers`).
    """

    @event.listens_for(engine.sync_engine, "do_connect")
    def connect(
        dialect: Dialect, _: ConnectionPoolEntry, cargs: tuple[Any, ...], cparams: dict[str, Any]
    ) -> DBAPIConnection:
        try:
            return dialect.connect(*cargs, **cparams)
        except UNREACHABLE as error:
            raise dialect.loaded_dbapi.OperationalError(
                f"cannot connect to the database: {error!r}"
            ) from error


def report_timeouts_as_operational(engine: AsyncEngine) -> None:
    """Raise a statement that ran past DATABASE_STATEMENT_TIMEOUT_SECONDS as SQLAlchemy's
    `OperationalError` (a 503 with Retry-After, `app.exceptions.handlers`), and replace
    its connection.

    asyncpg raises the bare `TimeoutError` of its `command_timeout`, which SQLAlchemy
    passes through unchanged (a 500). The connection is discarded, not reused: the
    server that did not answer in time may be gone, and what it did with the
    statement is unknown. Only that one: a slow statement is no reason to reopen the
    pool's others (each is checked on its own, `ping_if_idle`).
    """

    @event.listens_for(engine.sync_engine, "handle_error")
    def timed_out(context: ExceptionContext) -> BaseException | None:
        error = context.original_exception
        if not isinstance(error, TimeoutError):
            return None
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False
        return OperationalError(context.statement, context.parameters, error)


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
