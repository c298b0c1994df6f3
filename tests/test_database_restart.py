"""PostgreSQL restarted under a running instance: the app answers 503 from /health/ready
while the database is down (without hanging), and recovers by itself once it is back
(the failed requests make SQLAlchemy replace the dead connections, and a connection
idle for a while is checked before use): no restart of the app.

The database is a throwaway PostgreSQL cluster made for this test (initdb into a temp
dir, a free loopback port, run as the `postgres` user), never the shared server that
other suites use. It is removed whatever the outcome.

Runs where real services are configured (TEST_DATABASE_URL, as .ci/run sets it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import suite_runs
from tests.deploy_support import free_port, uvicorn_instance, wait_until
from tests.rendering import SuiteRun, render, run_in_service

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"),
    reason="runs with the real-services suites: set TEST_DATABASE_URL",
)
API = "/api/v1"
VARIANT = "postgres-restart"
READY_CHECK_LIMIT = 2.0 + 1.5  # the app's per-check timeout, plus slack for a busy machine


def _postgres_bin() -> Path:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda path: int(path.parent.parent.name),
    )
    if not candidates:
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql"
        )
    return candidates[-1].parent


@dataclass
class ThrowawayPostgres:
    bin_dir: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_owner(self, *command: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*prefix, *command], capture_output=True, text=True, check=False, timeout=120
        )

    def _pg_ctl(self, *args: str) -> None:
        result = self._as_owner(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args)
        assert result.returncode == 0, f"pg_ctl {' '.join(args)}: {result.stdout}{result.stderr}"

    def init(self) -> None:
        result = self._as_owner(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "--no-instructions",
        )
        assert result.returncode == 0, result.stderr

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c max_connections=50"
        )
        self._pg_ctl("-l", str(self.root / "server.log"), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@pytest.fixture
def postgres() -> Iterator[ThrowawayPostgres]:
    if os.geteuid() == 0 and not shutil.which("runuser"):
        pytest.fail("runuser is needed to run PostgreSQL as the postgres user")
    # Not pytest's tmp dir: the postgres user must be able to enter it.
    root = Path(tempfile.mkdtemp(prefix="pg-restart-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = ThrowawayPostgres(_postgres_bin(), root, free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            server._as_owner(
                str(server.bin_dir / "pg_ctl"), "-D", str(server.data), "-m", "immediate", "stop"
            )
        shutil.rmtree(root, ignore_errors=True)


def test_app_survives_a_postgres_restart(
    template_repo: Path, tmp_path: Path, postgres: ThrowawayPostgres
) -> None:
    project = render(template_repo, tmp_path / "svc", {"token_transport": "body"})
    env = {
        "ENVIRONMENT": "test",
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "DATABASE_URL": postgres.url,
        "REDIS_URL": "",  # the in-process cache: only the database restarts here
        "BCRYPT_ROUNDS": "4",
        "LOG_JSON": "true",
    }
    run_in_service(
        project,
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        variant=VARIANT,
        step="alembic upgrade head",
        env=dict(env),
    )
    timings: dict[str, float] = {}
    with uvicorn_instance(project, "app", env, tmp_path) as app, httpx.Client(timeout=30) as client:
        wait_until(f"{app.url}/health/ready", process=app)
        credentials = {"email": "ada@example.com", "password": "correct horse battery staple"}
        assert client.post(f"{app.url}{API}/auth/register", json=credentials).status_code == 202
        token = client.post(f"{app.url}{API}/auth/login", json=credentials).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        before = client.post(
            f"{app.url}{API}/articles", headers=headers, json={"title": "before", "content": "x"}
        )
        assert before.status_code == 201, before.text
        pid = app.process.pid

        postgres.stop()
        started = time.perf_counter()
        ready = client.get(f"{app.url}/health/ready")
        timings["/health/ready while PostgreSQL is down"] = time.perf_counter() - started
        started = time.perf_counter()
        read = client.get(f"{app.url}{API}/articles/{before.json()['id']}", headers=headers)
        timings["an API read while PostgreSQL is down"] = time.perf_counter() - started

        started = time.perf_counter()
        postgres.start()
        timings["PostgreSQL start"] = time.perf_counter() - started
        timings["ready again after PostgreSQL is back"] = wait_until(
            f"{app.url}/health/ready", timeout=30, process=app
        )
        after = client.post(
            f"{app.url}{API}/articles", headers=headers, json={"title": "after", "content": "x"}
        )
        again = client.get(f"{app.url}{API}/articles/{before.json()['id']}", headers=headers)
        still_running = app.process.poll() is None and app.process.pid == pid
    suite_runs.extend(SuiteRun(VARIANT, step, True, seconds) for step, seconds in timings.items())

    assert ready.status_code == 503, ready.text
    assert ready.json() == {"status": "unavailable", "checks": {"database": False, "cache": True}}
    assert timings["/health/ready while PostgreSQL is down"] < READY_CHECK_LIMIT
    assert read.status_code == 503, read.text
    assert read.headers["Retry-After"].isdigit()
    assert timings["an API read while PostgreSQL is down"] < 10, "requests must fail, not hang"
    assert after.status_code == 201, after.text
    assert again.status_code == 200, "data written before the restart is still there"
    assert still_running, "the app recovered without being restarted"
