"""Async SQLAlchemy engines and session factories.

One `AsyncSession` per request comes from a dependency in `app.routes.deps`: a
read-write session on the primary (`DATABASE_URL`), or a read-only one that
`app.core.replicas` places on a read replica or the primary. Sessions do not expire
objects on commit, and relationships are declared `lazy="raise"`, so async code never
triggers a hidden lazy load: what a response needs is loaded up front with
`selectinload`/`joinedload`.
"""

import time
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no type information published
from sqlalchemy import Connection, event, make_url
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import InvalidatePoolError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from app.core.config import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    if settings.uses_sqlite:
        engine = create_async_engine(settings.database_url, echo=settings.database_echo)
        event.listen(engine.sync_engine, "connect", _enable_sqlite_foreign_keys)
        event.listen(engine.sync_engine.pool, "checkout", _end_sqlite_query_only)
        event.listen(engine.sync_engine, "handle_error", _refused_by_sqlite_query_only)
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
            **statement_connect_args(settings, settings.database_url),
        },
    )
    report_unreachable_as_operational(engine)
    report_timeouts_as_operational(engine)
    ping_if_idle(engine, settings.database_ping_after_idle_seconds)
    return engine


def create_replica_engine(settings: Settings, url: str) -> AsyncEngine:
    """An engine for one read replica at `url`: a pool of its own (the
    `DATABASE_REPLICA_*` settings), connecting given up after
    `DATABASE_REPLICA_CONNECT_TIMEOUT_SECONDS` (asyncpg's default waits 60 s for a host
    that does not answer), each statement after
    `DATABASE_REPLICA_STATEMENT_TIMEOUT_SECONDS` (a standby that stopped answering, or a
    query waiting on a lock replayed from the primary, would hold the read for as long as
    that lasts) and raised as `OperationalError`, and pooled connections the replica has
    closed replaced at checkout (`replace_closed_on_checkout`), so a request finds a
    replica that went away when its session opens, while it can still read elsewhere
    (`app.core.replicas`).
    """
    engine = create_async_engine(
        url,
        echo=settings.database_echo,
        pool_size=settings.database_replica_pool_size,
        max_overflow=settings.database_replica_max_overflow,
        pool_timeout=settings.database_replica_pool_timeout,
        pool_recycle=settings.database_pool_recycle,
        connect_args={
            "timeout": settings.database_replica_connect_timeout_seconds,
            "command_timeout": settings.database_replica_statement_timeout_seconds,
            **statement_connect_args(settings, url),
        },
    )
    report_unreachable_as_operational(engine)
    report_timeouts_as_operational(engine)
    ping_if_idle(engine, settings.database_ping_after_idle_seconds)
    replace_closed_on_checkout(engine)
    return engine


def create_probe_engine(
    settings: Settings, url: str, connect_timeout_seconds: float
) -> AsyncEngine:
    """One pooled connection to `url`, for the replica checks (`app.core.replicas`): kept
    apart from the request pools, so a check never waits behind requests for a
    connection, nor requests behind it."""
    engine = create_async_engine(
        url,
        pool_size=1,
        max_overflow=0,
        pool_timeout=connect_timeout_seconds,
        connect_args={"timeout": connect_timeout_seconds, **statement_connect_args(settings, url)},
    )
    report_unreachable_as_operational(engine)
    replace_closed_on_checkout(engine)
    return engine


def _unnamed_statement() -> str:
    return ""  # PostgreSQL's unnamed statement: the next one prepared replaces it


# Behind a connection pooler in transaction mode (PgBouncer's `pool_mode = transaction`),
# each transaction may run on another server connection, and each server connection
# serves many clients in turn. A named prepared statement outlives its transaction: the
# next client there prepares one of the same name (asyncpg numbers them per connection,
# `__asyncpg_stmt_1__`, ...) and fails with DuplicatePreparedStatementError, or a cached
# one is missing on the server connection its next transaction gets. Uniquely named ones
# (SQLAlchemy's `prepared_statement_name_func` recipe) work but pile up on the server
# connections until the pooler closes them. So: no statement cache, asyncpg's or
# SQLAlchemy's, and every statement the unnamed one, prepared and run in the same
# transaction (SQLAlchemy's asyncpg dialect always opens one first) and gone with it.
TRANSACTION_POOLING_CONNECT_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,  # asyncpg's, of the statements it prepares itself
    "prepared_statement_cache_size": 0,  # SQLAlchemy's
    "prepared_statement_name_func": _unnamed_statement,
}


def statement_connect_args(settings: Settings, url: str) -> dict[str, Any]:
    """The connect arguments for statements on `url` that DATABASE_TRANSACTION_POOLING asks
    for: `TRANSACTION_POOLING_CONNECT_ARGS` when it is on and `url` is PostgreSQL (asyncpg),
    none otherwise (named, cached statements: SQLAlchemy measures them 10% or more faster).
    """
    if settings.database_transaction_pooling and make_url(url).get_driver_name() == "asyncpg":
        return dict(TRANSACTION_POOLING_CONNECT_ARGS)
    return {}


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


def replace_closed_on_checkout(engine: AsyncEngine) -> None:
    """Replace a pooled connection whose server has closed it, when it is checked out.

    asyncpg notices a server that ends its connections (a restart, a shutdown) as soon as
    the event loop reads the socket, and says so in `is_closed()`: no round trip. The
    pool then replaces that connection and every older one, as after a failed ping.
    """
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkout")
    def replace_if_closed(
        dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry, __: PoolProxiedConnection
    ) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise InvalidatePoolError("the server closed this pooled connection")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class ReadOnlySessionError(RuntimeError):
    """A write was attempted on a read-only session: a programming error (answered 500).

    Reads that go to a replica must not write, and a route that writes must take the
    read-write session (`DbSession` in `app.routes.deps`).
    """


class ReadOnlySession(Session):
    """A session that refuses to write: flushing a change, or executing an ORM or Core
    INSERT, UPDATE or DELETE through it, raises `ReadOnlySessionError` before any SQL is
    sent.

    The database refuses what the ORM cannot see (raw SQL, statements on
    `session.connection()`): on PostgreSQL its transactions are `READ ONLY` (asyncpg's
    `BEGIN READ ONLY`: no extra round trip), and on a standby every transaction is
    read-only anyway; on SQLite its connection is `PRAGMA query_only` while it is held
    (a write raises `ReadOnlySessionError`). This guards against mistakes, not intent:
    on the primary, SQL that lifts the mode itself (`SET TRANSACTION READ WRITE` as the
    transaction's first statement, `PRAGMA query_only = OFF`) writes; only a database
    role without write privileges would stop it.
    """


@event.listens_for(ReadOnlySession, "before_flush")
def _refuse_flush(session: Session, _: UOWTransaction, __: object) -> None:
    raise ReadOnlySessionError("a change was flushed on a read-only session: use DbSession")


@event.listens_for(ReadOnlySession, "do_orm_execute")
def _refuse_dml(state: ORMExecuteState) -> None:
    if state.statement.is_dml:
        raise ReadOnlySessionError("INSERT, UPDATE or DELETE on a read-only session: use DbSession")


# On a connection's pool record while a read-only session holds it (SQLite).
_QUERY_ONLY = "query_only"


@event.listens_for(ReadOnlySession, "after_begin")
def _sqlite_query_only(_: Session, __: object, connection: Connection) -> None:
    # SQLite has no read-only transactions: the connection refuses writes until the
    # pool hands it out again (`_end_sqlite_query_only`).
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA query_only = ON")
        connection.info[_QUERY_ONLY] = True


def _end_sqlite_query_only(
    dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _: PoolProxiedConnection
) -> None:
    if record.info.pop(_QUERY_ONLY, False):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only = OFF")
        cursor.close()


def _refused_by_sqlite_query_only(context: ExceptionContext) -> BaseException | None:
    # "attempt to write a readonly database": the same programming error as an ORM write.
    connection = context.connection
    held = connection is not None and connection.info.get(_QUERY_ONLY, False)
    if held and "readonly database" in str(context.original_exception):
        return ReadOnlySessionError("a write on a read-only session: use DbSession")
    return None


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """`engine` with `READ ONLY` transactions on PostgreSQL (the same pool)."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(postgresql_readonly=True)
    return engine


def create_read_session_factory(
    engine: AsyncEngine, session_class: type[ReadOnlySession] = ReadOnlySession
) -> async_sessionmaker[AsyncSession]:
    """Read-only sessions (`ReadOnlySession` or a subclass) on `engine`, otherwise
    configured as the read-write ones."""
    return async_sessionmaker(
        read_only(engine), expire_on_commit=False, autoflush=False, sync_session_class=session_class
    )


def _enable_sqlite_foreign_keys(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
    # SQLite ignores foreign keys (and so ON DELETE CASCADE) unless asked per connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
