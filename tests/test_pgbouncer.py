"""PostgreSQL behind a real PgBouncer in transaction mode (`pool_mode = transaction`, the
mode that makes pooling pay), started by this module on a free loopback port in front of
the TEST_DATABASE_URL server.

Proves: without DATABASE_TRANSACTION_POOLING the service fails there (the 500s of
asyncpg's DuplicatePreparedStatementError: named statements outlive their transaction);
with it, `alembic upgrade head` runs through the pooler, a short load from two instances,
more client connections than PgBouncer has server connections, gets no error, and the
generated suite's database and Redis tests pass through it with Redis a Cluster of three
primaries (started by this module, `tests/redis_topologies.py`): one run of the suite for
both, as a service run past one machine has both.

Needs TEST_DATABASE_URL and TEST_REDIS_URL (as .ci/run sets them), Debian's `pgbouncer`
(installed when missing and running as root) and `redis-server`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from tests.backend_suites import DATABASE_AND_REDIS, run_backend_suite
from tests.conftest import suite_runs
from tests.deploy_support import find_or_install, free_port, uvicorn_instance, wait_until
from tests.load import (
    LoadResult,
    fresh_database,
    reads_and_writes,
    register_and_login,
    run_load,
    service_env,
)
from tests.redis_topologies import ONE_REDIS_SERVER_ONLY, Cluster, redis_cluster
from tests.rendering import SuiteRun, render, run_in_service

SERVER_URL = os.environ.get("TEST_DATABASE_URL")
REDIS_URL = os.environ.get("TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(
    not (SERVER_URL and REDIS_URL),
    reason="PgBouncer fronts the real PostgreSQL: set TEST_DATABASE_URL and TEST_REDIS_URL",
)
VARIANT = "pgbouncer"
SERVER_CONNECTIONS = 4  # PgBouncer's default_pool_size: fewer than the instances open
# Why the generated tests that end a server process under the app's pool skip here.
DIRECT_CONNECTION_ONLY = "ends a server process under the app's pool: a direct connection's concern"


@dataclass
class PgBouncer:
    url: str  # TEST_DATABASE_URL's, through PgBouncer
    port: int
    directory: Path

    def log_text(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def show(self, what: str) -> list[dict[str, str]]:
        """A SHOW command of PgBouncer's admin console, as rows of column -> value."""
        user = make_url(self.url).username or "postgres"
        console = ["-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", "pgbouncer"]
        result = subprocess.run(
            ["psql", *console, "--no-psqlrc", "-A", "-F", "\t", "-c", f"SHOW {what}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            env={**os.environ, "PGPASSWORD": make_url(self.url).password or ""},
        )
        header, *rows = result.stdout.strip().splitlines()[:-1]  # the last: "(n rows)"
        return [dict(zip(header.split("\t"), row.split("\t"), strict=True)) for row in rows]


def _pgbouncer_config(server: str, port: int, directory: Path) -> str:
    url = make_url(server)
    return f"""[databases]
* = host={url.host or "127.0.0.1"} port={url.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/users.txt
admin_users = {url.username or "postgres"}
pool_mode = transaction
default_pool_size = {SERVER_CONNECTIONS}
max_client_conn = 200
query_wait_timeout = 20
logfile = {directory}/pgbouncer.log
"""


@contextmanager
def running_pgbouncer(server: str) -> Iterator[PgBouncer]:
    """PgBouncer in the foreground until the block ends; as the `postgres` user when we
    are root (it refuses to run as root), in a directory that user can enter."""
    binary = find_or_install(("pgbouncer", "/usr/sbin/pgbouncer"), "pgbouncer")
    directory = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    as_root = os.geteuid() == 0
    url = make_url(server)
    # auth_type = trust still wants the user listed; the password, when there is one, is
    # what PgBouncer logs in to PostgreSQL with.
    (directory / "users.txt").write_text(f'"{url.username or "postgres"}" "{url.password or ""}"\n')
    port = free_port()
    config = directory / "pgbouncer.ini"
    config.write_text(_pgbouncer_config(server, port, directory))
    if as_root:
        shutil.chown(directory, "postgres", "postgres")
        for path in directory.iterdir():
            shutil.chown(path, "postgres", "postgres")
    process = subprocess.Popen(
        [binary, str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        user="postgres" if as_root else None,
        group="postgres" if as_root else None,
    )
    bouncer = PgBouncer(url.set(port=port).render_as_string(hide_password=False), port, directory)
    try:
        deadline = time.monotonic() + 20
        while "listening on" not in bouncer.log_text():
            assert process.poll() is None, f"pgbouncer exited:\n{bouncer.log_text()}"
            assert time.monotonic() < deadline, f"pgbouncer did not start:\n{bouncer.log_text()}"
            time.sleep(0.1)
        yield bouncer
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def pgbouncer() -> Iterator[PgBouncer]:
    assert SERVER_URL
    with running_pgbouncer(SERVER_URL) as bouncer:
        yield bouncer


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with redis_cluster() as running:
        yield running


@pytest.fixture(scope="module")
def project(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(
        template_repo, tmp_path_factory.mktemp("pgbouncer") / "svc", {"token_transport": "body"}
    )


@contextmanager
def database_through(pgbouncer: PgBouncer) -> Iterator[str]:
    """A new database, as PgBouncer reaches it (its `*` entry passes any name on)."""
    assert SERVER_URL
    with fresh_database(SERVER_URL, "pgbouncer") as direct:
        name = make_url(direct).database
        yield make_url(pgbouncer.url).set(database=name).render_as_string(hide_password=False)


def _service_env(database_url: str, *, pooling: bool) -> dict[str, str]:
    assert REDIS_URL
    return service_env(
        database_url, REDIS_URL, DATABASE_TRANSACTION_POOLING="true" if pooling else "false"
    )


def _load(bases: list[str], workers: int, max_requests: int) -> LoadResult:
    """Reads and writes of one account, spread over the instances at `bases` in turn."""
    with httpx.Client(timeout=10) as setup:
        headers = register_and_login(setup, bases[0], "pgbouncer")
    steps = [reads_and_writes(base, headers) for base in bases]

    def step(client: httpx.Client, number: int) -> tuple[str, httpx.Response]:
        return steps[number % len(steps)](client, number // len(steps))

    return run_load(step, workers=workers, max_requests=max_requests, max_seconds=30)


def test_without_the_setting_named_statements_collide(
    project: Path, pgbouncer: PgBouncer, tmp_path: Path
) -> None:
    """The issue's failure, reproduced: the test's PgBouncer is in transaction mode."""
    with database_through(pgbouncer) as database_url:
        env = _service_env(database_url, pooling=False)
        migrate_env: dict[str, str | None] = {**env, "DATABASE_TRANSACTION_POOLING": "true"}
        run_in_service(
            project,
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            variant=VARIANT,
            step="alembic upgrade head",
            env=migrate_env,
        )
        with uvicorn_instance(project, "unpooled", env, tmp_path) as app:
            wait_until(f"{app.url}/health/ready", process=app)
            result = _load([app.url], workers=8, max_requests=200)
            log = app.log_text()
    print(f"\nthrough PgBouncer without DATABASE_TRANSACTION_POOLING: {result.summary()}")
    assert result.by_status()[500] > 0, result.summary()
    assert "DuplicatePreparedStatementError" in log or "InvalidSQLStatementNameError" in log


def test_migrations_and_a_load_through_pgbouncer(
    project: Path, pgbouncer: PgBouncer, tmp_path: Path
) -> None:
    """Two instances (a pool of 10 connections each) share PgBouncer's 4 server
    connections: more clients than server connections, as pooling is meant to be."""
    timings: dict[str, float] = {}
    with database_through(pgbouncer) as database_url:
        env = _service_env(database_url, pooling=True)
        started = time.perf_counter()
        run_in_service(
            project,
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            variant=VARIANT,
            step="alembic upgrade head (through PgBouncer)",
            env=dict(env),
        )
        timings["alembic upgrade head"] = time.perf_counter() - started
        with ExitStack() as stack:
            instances = [
                stack.enter_context(uvicorn_instance(project, name, env, tmp_path))
                for name in ("pooled-a", "pooled-b")
            ]
            for instance in instances:
                wait_until(f"{instance.url}/health/ready", process=instance)
            result = _load([instance.url for instance in instances], workers=8, max_requests=800)
            pools = [
                row
                for row in pgbouncer.show("POOLS")
                if row["database"] == make_url(database_url).database
            ]
            clients = sum(int(row["cl_active"]) + int(row["cl_waiting"]) for row in pools)
            servers = sum(
                int(row["sv_active"]) + int(row["sv_idle"]) + int(row["sv_used"]) for row in pools
            )
            logs = "\n".join(instance.log_text()[-2000:] for instance in instances)
    print(f"\nthrough PgBouncer, two instances: {result.summary()}")
    print(f"PgBouncer pools: {clients} client connections, {servers} server connections")
    timings["load, 2 instances"] = result.seconds
    suite_runs.extend(SuiteRun(VARIANT, step, True, seconds) for step, seconds in timings.items())
    failed = result.failures(lambda outcome: outcome.status in (200, 201))
    assert not failed, f"{failed[:10]}\n{logs}"
    assert len(result.outcomes) == 800
    assert 0 < servers <= SERVER_CONNECTIONS
    assert clients > servers, "the instances' connections were not pooled onto fewer"


def test_the_generated_suite_through_pgbouncer_on_a_redis_cluster(
    project: Path, pgbouncer: PgBouncer, cluster: Cluster
) -> None:
    """The suite's database and Redis parts (`tests.backend_suites`) with the database
    through PgBouncer in transaction mode and Redis a Cluster of three primaries: the
    backends of a service run past one machine, in one run of the suite. Tests that end a
    server process under the app's pool test a direct connection, and those that put a
    proxy before one Redis server or count one server's connections test one server: each
    says so when skipped."""
    assert REDIS_URL
    output = run_backend_suite(
        project,
        [*DATABASE_AND_REDIS, "tests/unit/test_hash_slots.py"],
        variant=VARIANT,
        label="postgresql via pgbouncer+redis+cluster",
        env={
            "TEST_DATABASE_URL": pgbouncer.url,
            "TEST_REDIS_URL": cluster.url,
            "DATABASE_TRANSACTION_POOLING": "true",
        },
        allowed_skips={DIRECT_CONNECTION_ONLY, *ONE_REDIS_SERVER_ONLY},
        header="backends: database=postgresql cache=redis+cluster",
    )
    direct_only = output.count(DIRECT_CONNECTION_ONLY)
    assert direct_only <= 3, output[-3000:]


# Run in the generated service: its cache's readiness ping, before and after a primary
# other than the one the client was given first is killed.
READINESS_PROBE = """
import asyncio, sys
from app.core.cache import create_cache
from app.core.config import Settings

async def main() -> None:
    cache = create_cache(Settings(environment="test", redis_url=sys.argv[1]))
    print("before", await cache.ping(), flush=True)
    sys.stdin.readline()  # the test kills a primary, then writes a line
    print("after", await cache.ping(), flush=True)
    await cache.close()

asyncio.run(main())
"""


def test_readiness_fails_while_a_cluster_primary_is_down(project: Path) -> None:
    """A client pinging only its first node reported ready while a third of the slots had
    no server, and every API request answered 503: a load balancer kept the instance."""
    with redis_cluster() as cluster:
        probe = subprocess.Popen(
            [sys.executable, "-c", READINESS_PROBE, cluster.url],
            cwd=project,
            env={**os.environ, "PYTHONPATH": str(project)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert probe.stdin is not None
        assert probe.stdout is not None
        assert probe.stdout.readline().split() == ["before", "True"]
        cluster.nodes[-1].kill()
        probe.stdin.write("\n")
        probe.stdin.flush()
        after = probe.stdout.readline().split()
        probe.wait(timeout=30)

    assert after == ["after", "False"]
