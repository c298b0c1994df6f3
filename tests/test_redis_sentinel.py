"""Redis past one server, for real: a primary with a replica watched by three sentinels,
started on loopback by this module (`tests/redis_topologies.py`) and named to the service
by REDIS_URL alone. (A Redis Cluster's run of the suite is tests/test_pgbouncer.py's,
through PgBouncer as well.)

Proves: the generated suite's Redis-backed tests (the cache's integration tests and the
end-to-end suite, where every request authenticates and is counted in Redis;
`tests.backend_suites`) pass on the group; and a Sentinel failover under load costs only
503s with Retry-After (never a 500) while the sentinels promote the replica, after which
requests succeed again, a logout ends its token at once, a logout from before the
failover still holds, and rate limits count again.

Needs TEST_DATABASE_URL and TEST_REDIS_URL (as .ci/run sets them; the Sentinel group is
this module's own, the database is the shared server's) and Debian's redis-server.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.backend_suites import REDIS_ONLY, run_backend_suite
from tests.conftest import suite_runs
from tests.deploy_support import uvicorn_instance, wait_until
from tests.load import (
    API,
    PASSWORD,
    Outcome,
    fresh_database,
    reads_and_writes,
    register_and_login,
    run_load,
    service_env,
)
from tests.redis_topologies import SENTINEL_SKIPS, SentinelGroup, cli, redis_sentinel_group
from tests.rendering import SuiteRun, render, run_in_service

SERVER_URL = os.environ.get("TEST_DATABASE_URL")
pytestmark = pytest.mark.skipif(
    not (SERVER_URL and os.environ.get("TEST_REDIS_URL")),
    reason="runs with the real-services suites: set TEST_DATABASE_URL and TEST_REDIS_URL",
)
VARIANT = "redis-sentinel"
LOGIN_LIMIT = 5  # per client address and minute, in the failover test
API_LIMIT = 20  # anonymous requests per client address and minute, in the failover test


@pytest.fixture(scope="module")
def project(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(
        template_repo, tmp_path_factory.mktemp("sentinel") / "svc", {"token_transport": "body"}
    )


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelGroup]:
    with redis_sentinel_group() as running:
        yield running


def test_the_generated_suite_on_redis_sentinel(project: Path, sentinels: SentinelGroup) -> None:
    assert SERVER_URL
    run_backend_suite(
        project,
        REDIS_ONLY,
        variant=VARIANT,
        label="postgresql+redis+sentinel",
        env={"TEST_DATABASE_URL": SERVER_URL, "TEST_REDIS_URL": sentinels.url},
        allowed_skips=set(SENTINEL_SKIPS),
        header="backends: database=postgresql cache=redis+sentinel",
    )


def _client(source: str = "127.0.0.1") -> httpx.Client:
    """A client connecting from `source`: loopback has a whole /8 to tell clients apart."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=15.0)


def _me(client: httpx.Client, base: str, headers: dict[str, str]) -> int:
    return client.get(f"{base}{API}/users/me", headers=headers).status_code


def _replicated(group: SentinelGroup) -> bool:
    """Whether the replica has every write the primary has made so far."""

    def offset(port: int, field: str) -> int:
        match = re.search(rf"^{field}:(\d+)", cli(port, "info", "replication"), re.MULTILINE)
        assert match, cli(port, "info", "replication")
        return int(match.group(1))

    primary, replica = group.servers
    return offset(replica.port, "slave_repl_offset") >= offset(primary.port, "master_repl_offset")


def test_a_sentinel_failover_under_load_is_503s_then_service(project: Path, tmp_path: Path) -> None:
    """The primary is killed (SIGKILL, as when its machine fails) 3 s into a load of
    reads, writes and failed logins; the sentinels notice after 1 s of silence and
    promote the replica. Afterwards: tokens, logouts and both kinds of rate limit (the
    login limits of `limits`, the API limit of the service's own script) on the new
    primary."""
    assert SERVER_URL
    kill_at, load_seconds = 3.0, 20.0
    with (
        redis_sentinel_group(down_after_ms=1000) as group,
        fresh_database(SERVER_URL, "failover") as database_url,
    ):
        env = service_env(
            database_url,
            group.url,
            LOGIN_RATE_LIMIT_PER_IP=f"{LOGIN_LIMIT}/minute",
            RATE_LIMIT_PER_IP=f"{API_LIMIT}/minute",
        )
        run_in_service(
            project,
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            variant=VARIANT,
            step="alembic upgrade head",
            env=dict(env),
        )
        with uvicorn_instance(project, "failover", env, tmp_path) as app, _client() as client:
            wait_until(f"{app.url}/health/ready", process=app)
            base = app.url
            worker_headers = register_and_login(client, base, "failover")
            ended_before = register_and_login(client, base, "ended-before")
            ended_after = register_and_login(client, base, "ended-after")
            assert client.post(f"{base}{API}/auth/logout", headers=ended_before).status_code == 204
            deadline = time.monotonic() + 10
            while not _replicated(group):  # replication is asynchronous
                assert time.monotonic() < deadline, "the replica did not catch up"
                time.sleep(0.05)
            moments: dict[str, float] = {}
            reads_and_writes_step = reads_and_writes(base, worker_headers)

            def step(http: httpx.Client, number: int) -> tuple[str, httpx.Response]:
                if number % 8 == 7:  # a failed login: counted by `limits`, on Sentinel too
                    body = {"email": f"nobody-{number}@example.com", "password": "wrong guess"}
                    return "POST /auth/login", http.post(f"{base}{API}/auth/login", json=body)
                return reads_and_writes_step(http, number)

            def fail_over(elapsed: float) -> None:
                if "killed" not in moments and elapsed >= kill_at:
                    group.servers[0].kill()
                    moments["killed"] = elapsed
                elif (
                    "killed" in moments
                    and "promoted" not in moments
                    and group.primary_port() == group.servers[1].port
                ):
                    moments["promoted"] = elapsed

            result = run_load(
                step,
                workers=6,
                max_requests=100_000,
                max_seconds=load_seconds,
                pause_seconds=0.02,
                during=fail_over,
            )
            # From addresses of their own: the load used up 127.0.0.1's anonymous budget.
            with _client("127.0.0.8") as checker:
                after = {
                    "ended before, refused": _me(checker, base, ended_before),
                    "still valid": _me(checker, base, ended_after),
                    "logout": checker.post(
                        f"{base}{API}/auth/logout", headers=ended_after
                    ).status_code,
                    "ended after, refused": _me(checker, base, ended_after),
                }
            with _client("127.0.0.9") as stranger:
                logins = [
                    stranger.post(
                        f"{base}{API}/auth/login",
                        json={"email": "nobody@example.com", "password": PASSWORD},
                    ).status_code
                    for _ in range(LOGIN_LIMIT + 1)
                ]
            with _client("127.0.0.10") as anonymous:
                reads = [_me(anonymous, base, {}) for _ in range(API_LIMIT + 1)]
            log = app.log_text()

    failed = result.failures(_served)
    by_status = Counter(outcome.status for outcome in failed)
    window = result.window(503)
    print(
        f"\nSentinel failover under load: {result.summary()}\n"
        f"primary killed at {moments.get('killed', -1):.1f} s, replica promoted at "
        f"{moments.get('promoted', -1):.1f} s; failed requests by status: {by_status}; "
        f"503s for {window:.1f} s"
    )
    suite_runs.append(SuiteRun(VARIANT, f"failover: 503s for {window:.1f} s", True, result.seconds))

    assert "promoted" in moments, group.log_text()
    assert set(by_status) <= {503}, f"{failed[:10]}\n{log[-4000:]}"
    assert all(outcome.retry_after for outcome in failed), failed[:10]
    # 503s only while the sentinels fail over: from the kill to a little past the promotion.
    assert all(
        moments["killed"] - 0.5 <= outcome.at <= moments["promoted"] + 5 for outcome in failed
    ), failed[:10]
    served_after = [outcome for outcome in result.outcomes if outcome.at > moments["promoted"] + 5]
    assert len(served_after) > 50, result.summary()
    assert not [outcome for outcome in served_after if outcome.status == 503]
    assert after == {
        "ended before, refused": 401,
        "still valid": 200,
        "logout": 204,
        "ended after, refused": 401,
    }
    assert logins == [401] * LOGIN_LIMIT + [429]
    assert reads == [401] * API_LIMIT + [429]


def _served(outcome: Outcome) -> bool:
    """Answered as the service answers when Redis is there: failed logins are refused
    (401), or throttled (429) once the load's address has used up its budget."""
    if outcome.request == "POST /auth/login":
        return outcome.status in (401, 429)
    return outcome.status in (200, 201)
