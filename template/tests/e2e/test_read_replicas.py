"""Read replicas against a real streaming standby (`tests/postgres_cluster.py`): a
throwaway primary and a `pg_basebackup -R` standby of it, both on loopback ports.

Where a statement ran is read from the servers themselves: both log the statements of
this module's database. `pg_wal_replay_pause()` makes the standby fall behind, and the
standby is stopped and started while a client keeps reading.
"""

import asyncio
import os
import re
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from app.core import replicas
from app.core.config import Settings
from app.core.replicas import read_source
from app.core.resources import Resources
from app.core.timeouts import replica_read_worst_case
from app.main import create_app
from app.models import Base
from app.services.rbac_seed import seed
from tests.helpers import API, create_article, login, register_user, unique_email
from tests.postgres_cluster import ReplicatedPostgres, Server

pytestmark = pytest.mark.skipif(
    not (os.environ.get("TEST_DATABASE_URL") or os.environ.get("TEST_READ_REPLICA")),
    reason="runs with the PostgreSQL suite (set TEST_DATABASE_URL); "
    "it builds a primary and a standby of its own",
)

# Frequent checks: the app notices a change to the standby within a fraction of a second.
CHECK_INTERVAL_SECONDS = 0.1
WAIT_SECONDS = 20.0
POLL_SECONDS = 0.05


async def _sql(server: Server, database: str, statement: str) -> Any:
    """Run one statement in autocommit; its first value, if it returns rows."""
    engine = create_async_engine(
        server.url(database), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text(statement))
            return result.scalar() if result.returns_rows else None
    finally:
        await engine.dispose()


async def _eventually(what: str, condition: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(int(WAIT_SECONDS / POLL_SECONDS)):
        if await condition():
            return
        await asyncio.sleep(POLL_SECONDS)
    pytest.fail(f"not within {WAIT_SECONDS} s: {what}")


async def _replayed(cluster: ReplicatedPostgres) -> None:
    """Wait until the standby has replayed everything the primary has written so far."""
    position = await _sql(cluster.primary, "postgres", "SELECT pg_current_wal_lsn()::text")
    replay = f"SELECT pg_last_wal_replay_lsn() >= '{position}'::pg_lsn"

    async def caught_up() -> bool:
        return bool(await _sql(cluster.standby, "postgres", replay))

    await _eventually("the standby replays the primary's writes", caught_up)


@asynccontextmanager
async def _serve(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Resources]]:
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, cast(Resources, app.state.resources)


@pytest.fixture(scope="module")
async def replica_database(
    replicated_postgres: ReplicatedPostgres, settings: Settings
) -> AsyncIterator[str]:
    """This module's database on the cluster, created and seeded as the suite's is, its
    statements logged by both servers; yields its name."""
    cluster = replicated_postgres
    name = f"test_replicas_{uuid.uuid4().hex[:12]}"
    await _sql(cluster.primary, "postgres", f'CREATE DATABASE "{name}"')
    await _sql(cluster.primary, "postgres", f"ALTER DATABASE \"{name}\" SET log_statement = 'all'")
    primary_only = settings.model_copy(
        update={"database_url": cluster.primary.url(name), "database_replica_urls": []}
    )
    async with _serve(primary_only) as (_, resources):
        async with resources.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        async with resources.session_factory() as session:
            await seed(session, resources.cache)
    await _replayed(cluster)
    try:
        yield name
    finally:
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        await _sql(cluster.primary, "postgres", drop)


class Scene:
    """This module's database, served by an app without replicas (which sets up users
    without marking them as recent writers) or by apps that read from the standby."""

    def __init__(self, cluster: ReplicatedPostgres, database: str, settings: Settings) -> None:
        self.cluster = cluster
        self.database = database
        self.settings = settings.model_copy(
            update={
                "database_url": cluster.primary.url(database),
                "database_replica_urls": [],
                "database_replica_check_interval_seconds": CHECK_INTERVAL_SECONDS,
                "database_replica_connect_timeout_seconds": 1.0,
                "cache_key_prefix": f"test:{uuid.uuid4().hex}:",
            }
        )
        standby = make_url(cluster.standby.url(database))
        self.standby_url = standby.render_as_string(hide_password=False)
        self.standby_name = f"{standby.host}:{standby.port}/{database}"

    async def users(self, count: int) -> list[dict[str, str]]:
        """Headers of `count` new users (authors)."""
        async with _serve(self.settings) as (client, _):
            emails = [unique_email(f"reader{number}") for number in range(count)]
            for email in emails:
                await register_user(client, email=email)
            return [await login(client, email) for email in emails]

    def reading_the_standby(
        self, **settings: Any
    ) -> AbstractAsyncContextManager[tuple[httpx.AsyncClient, Resources]]:
        """An app that reads from the standby; `settings` override the scene's."""
        update = {"database_replica_urls": [self.standby_url], **settings}
        return _serve(self.settings.model_copy(update=update))

    def reads(self, reason: str) -> float:
        """Read-only sessions opened so far for `reason`, by this process's apps."""
        target = self.standby_name if reason == "replica" else "primary"
        labels = {"target": target, "reason": reason}
        return REGISTRY.get_sample_value("database_reads_total", labels) or 0.0

    def log_positions(self) -> tuple[int, int]:
        return self.cluster.primary.log.stat().st_size, self.cluster.standby.log.stat().st_size

    def statements(self, since: tuple[int, int]) -> tuple[str, str]:
        """What the primary and the standby logged for this database since `since`."""
        on_primary, on_standby = since
        cluster = self.cluster
        return self._logged(cluster.primary, on_primary), self._logged(cluster.standby, on_standby)

    def _logged(self, server: Server, offset: int) -> str:
        with server.log.open("rb") as log:
            log.seek(offset)
            text_ = log.read().decode(errors="replace")
        entries = re.split(r"\n(?=\d{4}-\d\d-\d\d )", text_)
        return "\n".join(entry for entry in entries if f" db={self.database} " in entry)


@pytest.fixture
async def scene(
    replicated_postgres: ReplicatedPostgres, replica_database: str, settings: Settings
) -> AsyncIterator[Scene]:
    """The scene; afterwards the standby runs and replays again, whatever the test did."""
    cluster = replicated_postgres
    yield Scene(cluster, replica_database, settings)
    if not cluster.standby.running:
        await asyncio.to_thread(cluster.start_standby)
    await _sql(cluster.standby, "postgres", "SELECT pg_wal_replay_resume()")


async def _titles(client: httpx.AsyncClient, headers: dict[str, str], page: int) -> list[str]:
    """The titles on the first page of the article list; each `page` number asks for a
    different size, a page no one has cached yet."""
    response = await client.get(f"{API}/articles", headers=headers, params={"limit": 100 - page})
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["items"]]


async def test_reads_are_served_by_the_standby_and_writes_by_the_primary(scene: Scene) -> None:
    writer, reader = await scene.users(2)
    async with scene.reading_the_standby() as (client, _):
        before_write = scene.log_positions()
        article = await create_article(client, writer, "Streamed", publish=True)
        write_logs = scene.statements(before_write)

        before_read = scene.log_positions()
        replica_reads = scene.reads("replica")
        await _replayed(scene.cluster)
        titles = await _titles(client, reader, page=0)
        read_logs = scene.statements(before_read)

    assert "Streamed" in titles
    assert scene.reads("replica") == replica_reads + 1
    primary_writes, standby_writes = write_logs
    assert "INSERT INTO articles" in primary_writes
    assert "UPDATE articles" in primary_writes  # published
    assert "INSERT" not in standby_writes
    assert "UPDATE" not in standby_writes
    primary_reads, standby_reads = read_logs
    assert "FROM articles" in standby_reads, "the list was not read on the standby"
    assert "FROM articles" not in primary_reads, "the list was read on the primary"
    assert article["id"]


async def test_the_writer_reads_its_write_at_once_while_others_see_it_after_replay(
    scene: Scene,
) -> None:
    writer, reader = await scene.users(2)
    cluster = scene.cluster
    # Lag far beyond what the test takes: the paused standby stays in use.
    async with scene.reading_the_standby(database_replica_max_lag_seconds=120) as (client, _):
        article = await create_article(client, writer, "First title", publish=True)
        await _replayed(cluster)
        await _sql(cluster.standby, "postgres", "SELECT pg_wal_replay_pause()")
        paused = "SELECT pg_get_wal_replay_pause_state() = 'paused'"
        await _eventually("replay pauses", lambda: _sql(cluster.standby, "postgres", paused))

        changed = await client.patch(
            f"{API}/articles/{article['id']}", headers=writer, json={"title": "Second title"}
        )
        assert changed.status_code == 200, changed.text
        own_read = await client.get(f"{API}/articles/{article['id']}", headers=writer)
        own_list = await _titles(client, writer, page=1)
        replica_reads = scene.reads("replica")
        others_during_pause = await _titles(client, reader, page=2)
        read_on_the_standby = scene.reads("replica") == replica_reads + 1

        await _sql(cluster.standby, "postgres", "SELECT pg_wal_replay_resume()")
        await _replayed(cluster)
        others_after_replay = await _titles(client, reader, page=3)

    assert own_read.json()["title"] == "Second title"
    assert "Second title" in own_list
    assert read_on_the_standby
    assert "First title" in others_during_pause
    assert "Second title" not in others_during_pause
    assert "Second title" in others_after_replay


async def test_a_stopped_standby_fails_no_request_and_is_used_again_once_back(
    scene: Scene,
) -> None:
    (reader,) = await scene.users(1)
    cluster = scene.cluster
    statuses: list[int] = []
    reading = True

    async with scene.reading_the_standby() as (client, resources):

        async def read_continuously() -> None:
            offset = 10
            while reading:
                offset += 1
                response = await client.get(
                    f"{API}/articles", headers=reader, params={"offset": offset}
                )
                statuses.append(response.status_code)

        async def readiness() -> dict[str, Any]:
            response = await client.get("/health/ready")
            assert response.status_code == 200, "a skipped replica must not make it unready"
            ready: dict[str, Any] = response.json()
            return ready

        async def replica_state(state: str) -> bool:
            return bool((await readiness())["replicas"][0]["state"] == state)

        reads = asyncio.create_task(read_continuously())
        try:
            await _eventually("reads reach the standby", _more(scene.reads, "replica"))
            # One read is between its last statement and its end when the standby stops.
            async with resources.replicas.read_session(recent_writer=False) as unfinished:
                await unfinished.execute(text("SELECT 1"))
                unfinished_on = read_source(unfinished).target
                await asyncio.to_thread(cluster.standby.stop)
            fallbacks = scene.reads("replica_failed") + scene.reads("none_usable")
            await _eventually("the app skips the stopped standby", lambda: replica_state("down"))
            down = await readiness()
            await asyncio.sleep(0.5)  # reads go on, on the primary
            fell_back = scene.reads("replica_failed") + scene.reads("none_usable") > fallbacks

            await asyncio.to_thread(cluster.start_standby)
            await _eventually("the app uses the standby again", lambda: replica_state("ok"))
            await _eventually("reads reach the standby again", _more(scene.reads, "replica"))
        finally:
            reading = False
            await reads

    assert unfinished_on == scene.standby_name
    assert down["status"] == "degraded"
    assert down["checks"] == {"database": True, "cache": True}
    assert down["replicas"][0]["name"] == scene.standby_name
    assert fell_back, "no read went to the primary while the standby was down"
    failed = [status for status in statuses if status != 200]
    assert failed == [], f"{len(failed)} of {len(statuses)} reads failed: {sorted(set(failed))}"


async def test_a_standby_lagging_beyond_the_bound_is_skipped_until_it_catches_up(
    scene: Scene,
) -> None:
    writer, reader = await scene.users(2)
    cluster = scene.cluster
    settings = {"database_replica_max_lag_seconds": 0.3}
    async with scene.reading_the_standby(**settings) as (client, _):

        async def replica_state(state: str) -> bool:
            ready = (await client.get("/health/ready")).json()
            return bool(ready["replicas"][0]["state"] == state)

        await _sql(cluster.standby, "postgres", "SELECT pg_wal_replay_pause()")
        await create_article(client, writer, "Written while the standby lags", publish=True)
        await _eventually("the app skips the lagging standby", lambda: replica_state("lagging"))
        replica_reads, primary_reads = scene.reads("replica"), scene.reads("none_usable")
        while_lagging = await _titles(client, reader, page=4)
        skipped = scene.reads("replica") == replica_reads
        read_on_primary = scene.reads("none_usable") == primary_reads + 1

        await _sql(cluster.standby, "postgres", "SELECT pg_wal_replay_resume()")
        await _eventually("the app uses the standby again", lambda: replica_state("ok"))
        replica_reads = scene.reads("replica")
        await _titles(client, reader, page=5)
        used_again = scene.reads("replica") == replica_reads + 1

    assert "Written while the standby lags" in while_lagging
    assert skipped
    assert read_on_primary
    assert used_again


async def test_a_replica_read_blocked_by_a_replayed_lock_ends_within_its_bound(
    scene: Scene,
) -> None:
    """A lock the primary took (ACCESS EXCLUSIVE, as DDL takes) is replayed on the standby
    and blocks its reads of the table until replay moves past the lock's end: here,
    never (replay paused). The read gives up after the replica statement timeout and
    runs again on the primary (within the failover window), the replica is skipped, and
    the next read goes straight to the primary. Without the timeout the read hung."""
    (reader,) = await scene.users(1)
    cluster = scene.cluster
    statement_timeout = 1.0
    settings = {
        "database_replica_max_lag_seconds": 120,  # the paused standby stays usable
        "database_replica_statement_timeout_seconds": statement_timeout,
    }
    # Only this test takes such a lock while the module runs.
    locked = "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation > 0"
    primary = create_async_engine(cluster.primary.url(scene.database), poolclass=NullPool)
    async with scene.reading_the_standby(**settings) as (client, _):
        await _titles(client, reader, page=6)  # the standby serves
        try:
            async with primary.connect() as holder:
                await holder.execute(text("LOCK TABLE articles IN ACCESS EXCLUSIVE MODE"))

                async def replayed() -> bool:
                    return bool(await _sql(cluster.standby, "postgres", locked))

                await _eventually("the standby replays the lock", replayed)
                await _sql(cluster.standby, "postgres", "SELECT pg_wal_replay_pause()")
                await holder.rollback()  # the primary is free; the standby keeps the lock
        finally:
            await primary.dispose()
        failed_over = scene.reads("replica_failed")

        started = asyncio.get_running_loop().time()
        blocked = await asyncio.wait_for(
            client.get(f"{API}/articles", headers=reader, params={"limit": 93}), WAIT_SECONDS
        )
        took = asyncio.get_running_loop().time() - started
        ready = (await client.get("/health/ready")).json()
        await asyncio.sleep(3 * CHECK_INTERVAL_SECONDS)  # checks pass: the lock is invisible
        started = asyncio.get_running_loop().time()
        after = await client.get(f"{API}/articles", headers=reader, params={"limit": 92})
        took_after = asyncio.get_running_loop().time() - started

    assert blocked.status_code == 200, blocked.text
    assert statement_timeout <= took < statement_timeout + 2.0
    assert scene.reads("replica_failed") == failed_over + 1
    assert ready["status"] == "degraded"
    assert ready["replicas"][0]["state"] == "down"
    assert after.status_code == 200, after.text
    assert took_after < statement_timeout, "the skipped replica was read again"


async def test_a_check_in_flight_when_a_read_times_out_does_not_restore_the_replica(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lag check that started before a replica read timed out finishes after it: its
    "ok" is older news than the timeout and must not end the skip (CI once saw the next
    read go back to the blocked standby and wait out the timeout again)."""
    in_check, release = asyncio.Event(), asyncio.Event()
    async with scene.reading_the_standby() as (_, resources):
        replica_set = resources.replicas
        (replica,) = replica_set.replicas

        async def usable() -> bool:
            return replica.usable

        await _eventually("the app uses the standby", usable)
        identity_of = replicas._identity

        async def held_identity(connection: AsyncConnection) -> Any:
            identity = await identity_of(connection)
            if connection.engine is replica.probe:  # the replica's half of a check
                in_check.set()
                await release.wait()
            return identity

        monkeypatch.setattr(replicas, "_identity", held_identity)
        await asyncio.wait_for(in_check.wait(), WAIT_SECONDS)
        # What a read that ran out of its statement timeout reports.
        replica_set._replica_failed(replica, OperationalError("SELECT", None, TimeoutError()))
        release.set()
        await asyncio.sleep(3 * CHECK_INTERVAL_SECONDS)  # the held check ends, others run

        assert replica.state == "down"
        assert not replica.usable


async def test_a_read_on_a_standby_that_stops_answering_ends_within_the_budget(
    scene: Scene,
) -> None:
    """Every process of the standby is stopped (SIGSTOP), its connections open, as on a
    hung host: a list read on it gives up after the replica statement timeout and is
    answered, by the primary (200) or with the common 503, within the replica read's
    worst case; readiness skips the standby. Without a statement timeout it hung."""
    (reader,) = await scene.users(1)
    cluster = scene.cluster
    settings = {"database_replica_statement_timeout_seconds": 1.0}
    async with scene.reading_the_standby(**settings) as (client, resources):
        bound = replica_read_worst_case(resources.settings)
        await _titles(client, reader, page=7)  # the standby serves, its connection pooled
        cluster.standby.signal(signal.SIGSTOP)
        try:
            started = asyncio.get_running_loop().time()
            response = await asyncio.wait_for(
                client.get(f"{API}/articles", headers=reader, params={"limit": 90}), 2 * bound
            )
            took = asyncio.get_running_loop().time() - started
            ready = (await client.get("/health/ready")).json()
        finally:
            # Before the app ends: closing its connections waits for the server.
            cluster.standby.signal(signal.SIGCONT)

    assert response.status_code in {200, 503}, response.text
    if response.status_code == 503:
        assert response.json()["error"]["code"] == "service_unavailable"
        assert "Retry-After" in response.headers
    assert took <= bound + 1.0
    assert ready["replicas"][0]["state"] == "down"


async def test_a_replica_of_another_database_is_mismatched_and_its_reads_go_to_the_primary(
    scene: Scene,
) -> None:
    """The right standby, the wrong database (its `postgres`): readiness says so, the app
    logs it, and reads are answered by the primary instead of failing on missing tables."""
    (reader,) = await scene.users(1)
    wrong = make_url(scene.standby_url).set(database="postgres")
    settings = {"database_replica_urls": [wrong.render_as_string(hide_password=False)]}
    async with scene.reading_the_standby(**settings) as (client, _):
        ready = (await client.get("/health/ready")).json()
        response = await client.get(f"{API}/articles", headers=reader, params={"limit": 91})

    assert ready["status"] == "degraded"
    assert ready["replicas"][0]["state"] == "mismatched"
    assert response.status_code == 200, response.text


def _more(count: Callable[[str], float], reason: str) -> Callable[[], Awaitable[bool]]:
    """A condition that holds once `count(reason)` has grown from its value now."""
    start = count(reason)

    async def grown() -> bool:
        return count(reason) > start

    return grown
