"""Read replicas: where a read-only session goes, and the state of every replica.

The service writes to one primary (`DATABASE_URL`) and may read from read replicas
(`DATABASE_REPLICA_URLS`: streaming standbys of the primary). Routes say what they
need (`app.routes.deps`): `DbSession`, read-write on the primary, for anything that
writes and for reads that decide access; `ReadDbSession`, read-only, for reads that
may lag a little (lists, other people's records, public pages). `ReplicaSet.read_session`
places a read-only session, in this order:

1. on the primary for a caller who wrote within `read_your_writes_seconds`
   (`note_write` holds the rule and its reason);
2. on a replica whose last measured lag is within `DATABASE_REPLICA_MAX_LAG_SECONDS`,
   the usable ones taken in turn;
3. on the primary when no replica is usable (none configured, or every one skipped).

A watcher measures every replica each `DATABASE_REPLICA_CHECK_INTERVAL_SECONDS`, on a
connection of its own: one that cannot be reached, is not a standby (promoted, or the
primary itself), does not serve the primary's data (another cluster, another database,
another schema revision) or lags beyond the bound is skipped until a later check finds
it well. A replica that fails a statement (unreachable, timed out, missing a table the
primary has, refusing the user) is skipped at once, and the statement runs again on the
primary while the timeout budget leaves time for it (`replica_failover_window`): a
replica's trouble costs reads their speed, or at worst a 503, never a hung request.

Staleness (`staleness_bound_seconds`, S): a replica is used only while its measured lag
is within the bound, and lag grows no faster than time while the next measurement is
due, so a replica read is at most S = max lag + check interval behind the primary. What
is cached from a replica read lives at most S (`app.core.read_cache`), so anyone else
sees a write within 2 S; for those 2 S the writer reads the primary, and is served
nothing the cache holds from a replica.
"""

import asyncio
import contextlib
import itertools
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, Self

import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy import Connection, Engine, Result, event, text
from sqlalchemy.exc import DBAPIError, InterfaceError, InternalError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import ORMExecuteState

from app.core.cache import Cache
from app.core.config import Settings, database_identity
from app.core.database import (
    ReadOnlySession,
    create_probe_engine,
    create_read_session_factory,
    create_replica_engine,
    read_only,
)
from app.core.timeouts import replica_failover_window

logger = structlog.stdlib.get_logger(__name__)

ReplicaState = Literal["ok", "lagging", "down", "not_standby", "mismatched"]
ReadReason = Literal["replica", "recent_write", "none_usable", "replica_failed"]

READS = Counter(
    "database_reads_total",
    "Read-only sessions opened, by the database they read (primary or a replica) and why.",
    ["target", "reason"],
)
REPLICA_LAG = Gauge(
    "database_replica_lag_seconds",
    "How far each read replica was behind the primary at its last check; NaN while"
    " nothing measures it (down, not a standby, mismatched).",
    ["replica"],
    multiprocess_mode="livemax",
)
REPLICA_USABLE = Gauge(
    "database_replica_usable",
    "1 while a read replica takes reads, 0 while it is skipped.",
    ["replica"],
    multiprocess_mode="livemin",
)

PRIMARY = "primary"
READ_SOURCE_KEY = "read_source"

# The primary's WAL position, read just before the replicas are asked for theirs.
_PRIMARY_POSITION = text("SELECT CAST(pg_current_wal_lsn() AS text)")
# On a standby: whether it has replayed the primary's position of this check and of the
# check before, and how long ago the last transaction it replayed committed.
_REPLICA_POSITION = text(
    "SELECT pg_is_in_recovery(),"
    " pg_last_wal_replay_lsn() >= CAST(CAST(:current AS text) AS pg_lsn),"
    " pg_last_wal_replay_lsn() >= CAST(CAST(:previous AS text) AS pg_lsn),"
    " EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())"
)
# Which data a server serves: its cluster (a standby keeps its primary's system
# identifier), the database (a standby's databases have their primary's OIDs), and
# whether Alembic has recorded a schema revision there.
_IDENTITY = text(
    "SELECT (SELECT system_identifier FROM pg_control_system()), d.oid, d.datname,"
    " to_regclass('alembic_version') IS NOT NULL"
    " FROM pg_database AS d WHERE d.datname = current_database()"
)
_REVISION = text("SELECT version_num FROM alembic_version ORDER BY version_num")


@dataclass(frozen=True, slots=True)
class ReadSource:
    """Where a session reads: what code that caches its reads must know (`read_source`).

    `staleness_seconds` is how far behind the primary the data may be (0: the primary);
    `after_own_write` says the caller wrote recently, so what the cache holds from a
    replica, which may predate the write, must not be served to them.
    """

    target: str = PRIMARY
    staleness_seconds: float = 0.0
    after_own_write: bool = False


def read_source(session: AsyncSession) -> ReadSource:
    """Where `session` reads: set on the read-only sessions; the primary for the others."""
    source: ReadSource = session.info.get(READ_SOURCE_KEY, ReadSource())
    return source


# A standby cancels a query whose rows replay must remove ("conflict with recovery").
RECOVERY_CONFLICT = "40001"
# Errors that say a replica does not hold what the primary holds: a table, column or
# function missing, or the database itself. The query ran on the primary before it was
# written, so they are the replica's fault (another database, schema behind), not the
# caller's; the primary answers them (an error there is the caller's after all).
SCHEMA_MISMATCH = {"42P01", "42703", "42883", "3D000"}
# The replica refuses the user: its privileges or password differ from the primary's.
REFUSED = "42501"
# A replica whose read timed out stays skipped this long, whatever its checks say: they
# run no query that a lock replayed from the primary would block.
TIMED_OUT_SKIP_SECONDS = 10.0
_FALLBACK_KEY = "replica_fallback"
_PRIMARY_BIND_KEY = "primary_bind"


@dataclass(frozen=True, slots=True)
class _Fallback:
    primary: Engine  # the primary's read-only engine
    replica_failed: Callable[[DBAPIError | PoolTimeoutError], None]  # skip it as the error says
    replica_lost: Callable[[DBAPIError], None]  # skip the replica
    window_seconds: float  # a statement failing later is not run again (`replica_failover_window`)


class ReplicaSession(ReadOnlySession):
    """A read-only session on a replica that moves to the primary, for good, when the
    replica fails one of its statements (`_read_primary_if_the_replica_fails`).

    The statement runs again on the primary if it failed within the failover window;
    past it (a statement that timed out after `DATABASE_REPLICA_STATEMENT_TIMEOUT_SECONDS`
    on a standby that stopped answering) the replica's error is raised: a 503 with
    Retry-After for a timeout or a lost connection (`app.exceptions.handlers`). What
    earlier statements read stays as it was (ORM objects are detached, with their loaded
    values), so a read that fails over midway may combine rows from two moments, no
    further apart than the lag bound.
    """

    def get_bind(self, mapper: Any = None, **kwargs: Any) -> Engine | Connection:
        primary: Engine | None = self.info.get(_PRIMARY_BIND_KEY)
        if primary is not None:
            return primary
        return super().get_bind(mapper, **kwargs)


@event.listens_for(ReplicaSession, "do_orm_execute")
def _read_primary_if_the_replica_fails(state: ORMExecuteState) -> Result[Any] | None:
    session = state.session
    fallback: _Fallback | None = session.info.get(_FALLBACK_KEY)
    if fallback is None:  # on the primary already
        return None
    started = time.monotonic()
    try:
        return state.invoke_statement()
    except (DBAPIError, PoolTimeoutError) as error:
        if isinstance(error, DBAPIError) and not _replica_trouble(error):
            raise
        fallback.replica_failed(error)
        if time.monotonic() - started > fallback.window_seconds:
            raise  # the primary's read could outlast the timeout budget
        del session.info[_FALLBACK_KEY]
        # Drop the replica's connection without a word to it: it may be mid-failure.
        session.invalidate()
        session.info[_PRIMARY_BIND_KEY] = fallback.primary
        session.info[READ_SOURCE_KEY] = ReadSource()
        return state.invoke_statement()


async def _close(session: AsyncSession) -> None:
    """End `session`; on a replica that has gone away meanwhile, drop its connection."""
    try:
        await session.close()
    except DBAPIError as error:
        fallback: _Fallback | None = session.info.get(_FALLBACK_KEY)
        if fallback is None or not _replica_trouble(error):
            raise
        fallback.replica_lost(error)
        await session.invalidate()


def _replica_trouble(error: DBAPIError) -> bool:
    """Whether `error` says the replica cannot answer, rather than that the query is
    wrong: it cannot be reached or has gone away (SQLSTATE class 08), timed out (an
    `OperationalError`, `report_timeouts_as_operational`), is shutting down or starting
    (57P01-57P03), cancelled the query for a conflict with replay, left the driver's
    connection in a broken state (asyncpg's InternalClientError, seen on the first
    connection to a standby that has just started), lacks what the primary has
    (`SCHEMA_MISMATCH`) or refuses the user (42501, class 28)."""
    if isinstance(error, OperationalError | InterfaceError | InternalError):
        return True
    if error.connection_invalidated:
        return True
    sqlstate = _sqlstate(error) or ""
    return sqlstate.startswith(("08", "28")) or sqlstate in {
        "57P01",
        "57P02",
        "57P03",
        RECOVERY_CONFLICT,
        REFUSED,
        *SCHEMA_MISMATCH,
    }


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


@dataclass(frozen=True, slots=True)
class _Identity:
    """Which data a server serves (`_IDENTITY`): a replica must match its primary."""

    system_identifier: int
    database_oid: int
    database: str
    revision: tuple[str, ...] | None  # Alembic's, None where Alembic has recorded none

    def mismatch(self, primary: Self) -> str | None:
        """Why a replica with this identity does not serve `primary`'s data, or None."""
        if self.system_identifier != primary.system_identifier:
            return "another cluster: not a standby of DATABASE_URL"
        if self.database_oid != primary.database_oid:
            return f"another database ({self.database!r}; DATABASE_URL's is {primary.database!r})"
        if self.revision != primary.revision:
            return f"schema revision {self.revision}, the primary's is {primary.revision}"
        return None


async def _identity(connection: AsyncConnection) -> _Identity:
    system_identifier, oid, database, versioned = (await connection.execute(_IDENTITY)).one()
    revision = tuple((await connection.execute(_REVISION)).scalars()) if versioned else None
    return _Identity(int(system_identifier), int(oid), str(database), revision)


@dataclass(frozen=True, slots=True)
class _Position:
    lsn: str
    taken_at: float  # time.monotonic() just before the primary was asked
    identity: _Identity  # the primary's


class Replica:
    """One read replica: its request pool, its probe connection and its last check."""

    def __init__(self, settings: Settings, url: str) -> None:
        host, port, database, _ = database_identity(url)
        self.name = f"{host}:{port}/{database}"
        self.engine = create_replica_engine(settings, url)
        self.sessions = create_read_session_factory(self.engine, ReplicaSession)
        self.probe = create_probe_engine(
            settings, url, settings.database_replica_connect_timeout_seconds
        )
        self.state: ReplicaState = "down"  # until the first check says otherwise
        self.lag_seconds: float | None = None
        self.problem: str | None = "not checked yet"
        self.skipped_until = 0.0  # time.monotonic(): a read timed out (TIMED_OUT_SKIP_SECONDS)

    @property
    def usable(self) -> bool:
        return self.state == "ok"

    async def close(self) -> None:
        await self.probe.dispose()
        await self.engine.dispose()


@dataclass(frozen=True, slots=True)
class ReplicaReport:
    """A replica as readiness reports it."""

    name: str
    state: ReplicaState
    lag_seconds: float | None


class ReplicaSet:
    """The read replicas of the primary `engine`, and the one place that decides where
    a read-only session goes (`read_session`). With no replica configured every read
    goes to the primary, as it would without this class, and nothing runs in the
    background."""

    def __init__(self, settings: Settings, engine: AsyncEngine, cache: Cache) -> None:
        self.cache = cache
        self.primary_reads = create_read_session_factory(engine)
        self._primary_bind = read_only(engine).sync_engine
        self.replicas = [Replica(settings, url) for url in settings.database_replica_urls]
        self.max_lag_seconds = settings.database_replica_max_lag_seconds
        self.check_interval_seconds = settings.database_replica_check_interval_seconds
        self.check_timeout_seconds = settings.database_replica_connect_timeout_seconds
        self.failover_window_seconds = replica_failover_window(settings)
        self._primary_probe = (
            create_probe_engine(settings, settings.database_url, self.check_timeout_seconds)
            if self.replicas
            else None
        )
        self._previous: _Position | None = None
        self._turns = itertools.count()
        self._watcher: asyncio.Task[None] | None = None

    @property
    def configured(self) -> bool:
        return bool(self.replicas)

    @property
    def staleness_bound_seconds(self) -> float:
        """How far behind the primary a replica read may be (see the module's docstring)."""
        return self.max_lag_seconds + self.check_interval_seconds

    @property
    def read_your_writes_seconds(self) -> float:
        """How long a caller reads the primary after a write: a replica read, or a cached
        one loaded from a replica, may miss a write for twice the staleness bound."""
        return 2 * self.staleness_bound_seconds

    # Lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Check every replica once (so the first requests may use them), then keep
        checking in the background. Waits at most the check timeout."""
        if not self.replicas:
            return
        await self.check()
        self._watcher = asyncio.create_task(self._watch(), name="replica-watcher")

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for replica in self.replicas:
            await replica.close()
        if self._primary_probe is not None:
            await self._primary_probe.dispose()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval_seconds)
            try:
                await self.check()
            except Exception:  # a watcher that dies would leave the states frozen
                logger.exception("replica_check_failed")

    # Routing ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def read_session(self, *, recent_writer: bool) -> AsyncIterator[AsyncSession]:
        """A read-only session, placed as the module's docstring says: on the primary
        for a `recent_writer` (see `note_write`), else on a usable replica, else on the
        primary. Nothing is sent before its first statement. A replica that fails a
        statement (gone away, refusing, or cancelling it for a conflict with replay) is
        tried no further: the session moves to the primary and runs the statement there
        (`ReplicaSession`), so the reader gets an answer all the same. A replica that goes
        away after the last statement costs nothing either: the session's end lets its
        connection go (the answer is complete by then)."""
        session = self._place(recent_writer=recent_writer)
        try:
            yield session
        finally:
            await _close(session)

    def _place(self, *, recent_writer: bool) -> AsyncSession:
        if recent_writer:  # first: the cache may hold replica reads from before a failure
            return self._on_primary("recent_write", after_own_write=True)
        usable = [replica for replica in self.replicas if replica.usable]
        if not usable:
            return self._on_primary("none_usable")
        replica = usable[next(self._turns) % len(usable)]
        session = replica.sessions()
        session.info[READ_SOURCE_KEY] = ReadSource(replica.name, self.staleness_bound_seconds)
        session.info[_FALLBACK_KEY] = _Fallback(
            self._primary_bind,
            replica_failed=lambda error: self._replica_failed(replica, error),
            replica_lost=lambda error: self._set(replica, "down", None, repr(error.orig)),
            window_seconds=self.failover_window_seconds,
        )
        READS.labels(replica.name, "replica").inc()
        return session

    async def note_write(self, caller: uuid.UUID | None) -> None:
        """Mark `caller` as a recent writer for `read_your_writes_seconds`: their reads go
        to the primary meanwhile. Called before the write, so no instance can serve them
        a read without it.

        Read-your-writes: a client that changed something and reads it back must see its
        change, though a replica may not have it yet, nor a cached read loaded from one.
        The window is longer than any replica read or cached replica read can be behind
        (twice the staleness bound), and while it lasts the writer's reads go to the
        primary and are served nothing the cache holds from a replica. The mark is kept in
        the shared cache (Redis), so every instance honours it, and is read with the
        caller's authentication, in the same round trip (`writer_mark_key`). Anonymous
        callers have no writes of their own to see.
        """
        if caller is None or not self.replicas:
            return
        ttl_seconds = math.ceil(self.read_your_writes_seconds)
        await self.cache.set(writer_mark_key(caller), "1", ttl_seconds)

    def _replica_failed(self, replica: Replica, error: DBAPIError | PoolTimeoutError) -> None:
        """Skip `replica` as `error` says, until a later check finds it well; count the
        failover. A full pool or a query cancelled by replay says nothing against it."""
        if isinstance(error, PoolTimeoutError):
            logger.info("replica_pool_busy", replica=replica.name)
        elif _sqlstate(error) == RECOVERY_CONFLICT:
            logger.info("replica_read_cancelled", replica=replica.name, error=repr(error.orig))
        elif isinstance(error.orig, TimeoutError):
            replica.skipped_until = time.monotonic() + TIMED_OUT_SKIP_SECONDS
            self._set(replica, "down", None, "a read timed out")
        elif _sqlstate(error) in SCHEMA_MISMATCH:
            self._set(replica, "mismatched", None, f"a read failed: {error.orig!r}")
        else:
            self._set(replica, "down", None, f"a read failed: {error.orig!r}")
        READS.labels(PRIMARY, "replica_failed").inc()

    def _on_primary(self, reason: ReadReason, *, after_own_write: bool = False) -> AsyncSession:
        session = self.primary_reads()
        if after_own_write:
            session.info[READ_SOURCE_KEY] = ReadSource(after_own_write=True)
        READS.labels(PRIMARY, reason).inc()
        return session

    # Checks -------------------------------------------------------------------

    async def check(self) -> None:
        """Measure every replica's lag behind the primary, concurrently, and skip or
        restore each by the result. Nothing to do without replicas."""
        if self._primary_probe is None:
            return
        current = await self._primary_position(self._primary_probe)
        if current is None:
            # Lag cannot be measured without the primary: replicas keep their last state
            # (they still answer reads while the primary is away), unless unreachable.
            await asyncio.gather(*(self._check_reachable(r) for r in self.replicas))
            return
        previous = self._previous or current
        await asyncio.gather(*(self._check(r, current, previous) for r in self.replicas))
        self._previous = current

    async def _primary_position(self, probe: AsyncEngine) -> _Position | None:
        taken_at = time.monotonic()
        try:
            async with asyncio.timeout(self.check_timeout_seconds):
                async with probe.connect() as connection:
                    lsn = (await connection.execute(_PRIMARY_POSITION)).scalar_one()
                    identity = await _identity(connection)
        except Exception as error:  # whatever the failure, there is no position
            logger.warning("primary_position_unknown", error=repr(error))
            return None
        return _Position(lsn, taken_at, identity)

    async def _check(self, replica: Replica, current: _Position, previous: _Position) -> None:
        if time.monotonic() < replica.skipped_until:
            return
        try:
            async with asyncio.timeout(self.check_timeout_seconds):
                async with replica.probe.connect() as connection:
                    row = (
                        await connection.execute(
                            _REPLICA_POSITION, {"current": current.lsn, "previous": previous.lsn}
                        )
                    ).one()
                    identity = await _identity(connection)
        except Exception as error:  # unreachable, refusing, timed out: all mean "down"
            self._set(replica, "down", None, repr(error))
            return
        if time.monotonic() < replica.skipped_until:
            return  # a read timed out while this check ran: its verdict is the newer one
        standby, caught_up, caught_up_before, since_replayed = row
        if not standby:
            self._set(replica, "not_standby", None, "not in recovery: promoted, or a primary")
            return
        mismatch = identity.mismatch(current.identity)
        if mismatch is not None:
            self._set(replica, "mismatched", None, f"does not serve the primary's data: {mismatch}")
            return
        lag = _lag(caught_up, caught_up_before, since_replayed, current, previous)
        if lag is None or lag > self.max_lag_seconds:
            self._set(replica, "lagging", lag, f"behind by more than {self.max_lag_seconds} s")
        else:
            self._set(replica, "ok", lag, None)

    async def _check_reachable(self, replica: Replica) -> None:
        try:
            async with asyncio.timeout(self.check_timeout_seconds):
                async with replica.probe.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception as error:
            self._set(replica, "down", None, repr(error))

    def _set(
        self, replica: Replica, state: ReplicaState, lag: float | None, problem: str | None
    ) -> None:
        if state != replica.state:
            if state == "ok":
                logger.info("replica_usable", replica=replica.name, lag_seconds=lag)
            elif state == "mismatched":  # a setting to fix, not an outage to wait out
                logger.error("replica_mismatched", replica=replica.name, problem=problem)
            else:
                logger.warning(
                    "replica_skipped", replica=replica.name, state=state, problem=problem
                )
        replica.state, replica.lag_seconds, replica.problem = state, lag, problem
        REPLICA_USABLE.labels(replica.name).set(1 if state == "ok" else 0)
        # No measurement, no value: the last one would say a replica that is down is well.
        REPLICA_LAG.labels(replica.name).set(math.nan if lag is None else lag)

    def report(self) -> list[ReplicaReport]:
        return [ReplicaReport(r.name, r.state, r.lag_seconds) for r in self.replicas]


def _lag(
    caught_up: bool | None,
    caught_up_before: bool | None,
    since_replayed: float | None,
    current: _Position,
    previous: _Position,
) -> float | None:
    """An upper bound of a standby's lag, in seconds; None when nothing bounds it.

    Replayed past the primary's position of this check: no more than the time since that
    position was read. Past the previous check's: no more than the time since then. The
    time since its last replayed commit bounds it too (the primary's commit time against
    the standby's clock) but alone overstates the lag of a quiet primary, whose last
    commit may be old while nothing is left to replay.
    """
    now = time.monotonic()
    if caught_up:
        return now - current.taken_at
    bounds: list[float] = [
        *([now - previous.taken_at] if caught_up_before else []),
        *([float(since_replayed)] if since_replayed is not None else []),
    ]
    return max(0.0, min(bounds)) if bounds else None  # never below 0 (clock skew)


def writer_mark_key(caller: uuid.UUID) -> str:
    """The cache key marking `caller` as a recent writer (`ReplicaSet.note_write`)."""
    return f"replicas:recent-writer:{caller}"
