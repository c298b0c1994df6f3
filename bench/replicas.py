"""`python -m bench.replicas`: reads on a streaming standby versus everything on the
primary, measured in the same run (docs/read-replicas.md).

One run renders the default variant, builds a throwaway primary and a `pg_basebackup -R`
standby with the rendered suite's own helper (`tests/postgres_cluster.py`: PostgreSQL's
server programs are needed), migrates and seeds the primary (a user through the API,
made an administrator, 1,000 published articles and 1,000 more users), then serves the
app twice over the same data, each time with a fresh cache: first with
`DATABASE_REPLICA_URLS` naming the standby, then without replicas. wrk drives, at each:

- `GET /api/v1/users/me`: the caller's cached snapshot, no query (the cost of routing);
- `GET /api/v1/articles?limit=100`: the article list, cached per audience;
- `GET /api/v1/users?limit=100`: the administrators' user list, never cached, so every
  request reads the database (where a replica takes load off the primary).

Besides requests/s and latency, it prints the CPU each PostgreSQL server spent per
request: what moving reads to a standby takes off the primary. Results go to
`bench/results/replicas.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # ships no type information
import httpx

from bench import endpoints, seed, wrk
from bench.endpoints import API, Endpoint
from bench.render import REPO_ROOT
from bench.runner import Bench, Options
from bench.servers import Server, _children, cpu_seconds

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "replicas.json"
ENDPOINTS = (
    endpoints.ENDPOINTS_BY_KEY["users_me"],
    endpoints.ENDPOINTS_BY_KEY["articles_list"],
    Endpoint(
        "users_list",
        "GET /api/v1/users?limit=100 (uncached)",
        "app",
        f"{API}/users?limit=100",
        authenticated=True,
    ),
)
SETUPS = ("reads on the standby", "all on the primary")
# The benchmark account administers users; as many users as articles, each an author,
# give the user list real pages to read (a page with each user's roles: two statements).
_SEED_USERS = (
    """
    INSERT INTO user_roles (user_id, role_id)
    SELECT u.id, r.id FROM users AS u, roles AS r WHERE u.email = $1 AND r.name = 'admin'
    """,
    """
    INSERT INTO users (id, email, hashed_password, full_name, is_active, is_verified,
                       created_at, updated_at)
    SELECT gen_random_uuid(), 'bench-user-' || n || '@example.com', 'not a hash',
           'Bench User ' || n, true, true, now() - n * interval '1 minute', now()
    FROM generate_series(1, $1::int) AS n
    """,
    """
    INSERT INTO user_roles (user_id, role_id)
    SELECT u.id, r.id FROM users AS u, roles AS r
    WHERE u.email LIKE 'bench-user-%' AND r.name = 'author'
    """,
    "ANALYZE",
)


@dataclass(frozen=True, slots=True)
class Row:
    setup: str
    endpoint: str
    result: wrk.WrkResult
    app_cpu_ms: float  # the app's worker CPU per request
    primary_cpu_ms: float  # the primary PostgreSQL server's CPU per request
    standby_cpu_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "setup": self.setup,
            "endpoint": self.endpoint,
            "app_cpu_ms_per_request": self.app_cpu_ms,
            "primary_cpu_ms_per_request": self.primary_cpu_ms,
            "standby_cpu_ms_per_request": self.standby_cpu_ms,
        } | self.result.as_dict()


def load_cluster_helper(project: Path) -> ModuleType:
    """The rendered suite's `tests/postgres_cluster.py` (standard library only)."""
    path = project / "tests" / "postgres_cluster.py"
    spec = importlib.util.spec_from_file_location("bench_postgres_cluster", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def postgres_cpu_seconds(data_directory: Path) -> float:
    """CPU time of a PostgreSQL server so far: the postmaster, its live processes (the
    app's pooled connections among them) and the children it has reaped."""
    postmaster = int((data_directory / "postmaster.pid").read_text().split()[0])
    stat = Path(f"/proc/{postmaster}/stat").read_bytes()
    fields = stat[stat.rfind(b")") + 2 :].split()
    reaped = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    live = sum(cpu_seconds(pid) for pid in _children(postmaster))
    return cpu_seconds(postmaster) + reaped + live


class ReplicaBench(Bench):
    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.rows: list[Row] = []
        self.cluster: Any = None

    def run_replicas(self) -> list[Row]:
        with ExitStack() as cleanup:
            workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
            project = self._render(workdir)
            cluster = load_cluster_helper(project).ReplicatedPostgres.create()
            cleanup.callback(cluster.close)
            self.cluster = cluster
            server_url = cluster.primary.url()
            database = seed.create_database(server_url)
            self.database_url = seed.app_url(server_url, database)
            standby_url = seed.app_url(cluster.standby.url(), database)
            seed.migrate(project, self.database_url, self._app_env(project))
            for setup, replicas in zip(SETUPS, ([standby_url], []), strict=True):
                self.prefix = f"bench_{uuid.uuid4().hex[:12]}:"  # a fresh cache each time
                cleanup.callback(seed.delete_redis_keys, self.options.redis_url, self.prefix)
                self._serve(project, setup, replicas)
        return self.rows

    def _serve(self, project: Path, setup: str, replicas: list[str]) -> None:
        env = self._app_env(project) | {"DATABASE_REPLICA_URLS": json.dumps(replicas)}
        log = self.logs / f"replicas-{'standby' if replicas else 'primary'}.log"
        with Server("app", "app.main:create_app", project, env, 1, log) as server:
            server.start("/health/live")
            if not self.seeded:
                endpoints.register(server.base_url, self.account)
                seed.seed_articles(self.database_url, self.account.email, self.options.articles)
                asyncio.run(
                    _seed_users(self.database_url, self.account.email, self.options.articles)
                )
                self.seeded = True
            self._wait_for_standby(server, expect_replica=bool(replicas))
            self.token = endpoints.login(server.base_url, self.account)
            print(f"{setup}:", flush=True)
            for endpoint in ENDPOINTS:
                self.rows.append(self._measure_row(server, setup, endpoint))

    def _wait_for_standby(self, server: Server, *, expect_replica: bool) -> None:
        """Until readiness reports the standby usable (it replays the seed meanwhile)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = httpx.get(f"{server.base_url}/health/ready", timeout=10).json()
            if not expect_replica or all(r["state"] == "ok" for r in ready.get("replicas", [])):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the standby never became usable: {ready}")

    def _cpu_seconds(self, server: Server) -> tuple[float, float, float]:
        """CPU used so far by the app's worker, the primary and the standby."""
        cluster = self.cluster
        primary = postgres_cpu_seconds(cluster.primary.data)
        return server.cpu_seconds(), primary, postgres_cpu_seconds(cluster.standby.data)

    def _measure_row(self, server: Server, setup: str, endpoint: Endpoint) -> Row:
        request = self._request(server, endpoint)
        self._settle(server)
        endpoints.check(endpoint, request)
        if self.options.warmup_s:
            warmup = replace(self.options.load, duration_s=self.options.warmup_s)
            wrk.run(self.wrk, request, warmup)
            self._settle(server)
        before = self._cpu_seconds(server)
        result = wrk.run(self.wrk, request, self.options.load)
        after = self._cpu_seconds(server)
        server.check_alive()
        per_request = [
            (end - start) * 1000 / result.requests if result.requests else 0.0
            for start, end in zip(before, after, strict=True)
        ]
        row = Row(setup, endpoint.label, result, *per_request)
        print(
            f"  {endpoint.label:<40} {result.requests_per_second:>9.1f} req/s "
            f"p99 {result.p99_ms:.2f} ms errors {result.errors} "
            f"cpu ms/req: app {row.app_cpu_ms:.2f} primary {row.primary_cpu_ms:.2f} "
            f"standby {row.standby_cpu_ms:.2f}",
            flush=True,
        )
        return row


async def _seed_users(database_url: str, administrator: str, count: int) -> None:
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        administer, users, roles, analyze = _SEED_USERS
        await connection.execute(administer, administrator, timeout=60)
        await connection.execute(users, count, timeout=60)
        await connection.execute(roles, timeout=60)
        await connection.execute(analyze, timeout=60)
    finally:
        await connection.close()


def format_table(rows: list[Row]) -> str:
    header = (
        f"{'endpoint (1 worker)':<42} {'setup':<22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>6} {'app cpu':>8} {'primary cpu':>11} {'standby cpu':>11}"
    )
    lines = [header, "-" * len(header)]
    for endpoint in ENDPOINTS:
        for row in (r for r in rows if r.endpoint == endpoint.label):
            r = row.result
            lines.append(
                f"{row.endpoint:<42} {row.setup:<22} {r.requests_per_second:>9.1f} "
                f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>6} {row.app_cpu_ms:>8.2f} "
                f"{row.primary_cpu_ms:>11.2f} {row.standby_cpu_ms:>11.2f}"
            )
    lines.append("(cpu: milliseconds of CPU per request, of the app's worker and of each server)")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> tuple[Options, Path]:
    database_url, redis_url = seed.default_server_urls()
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="1 s per endpoint, 100 articles")
    parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per endpoint")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--articles", type=int, default=1000, help="seeded articles")
    parser.add_argument("--redis-url", default=redis_url, help="Redis for the app's cache")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results")
    args = parser.parse_args(argv)
    values: dict[str, Any] = {
        "database_url": database_url,  # unused: the run builds its own servers
        "redis_url": args.redis_url,
        "output": args.output.resolve(),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "articles": args.articles,
        "workers": (1,),
        "bcrypt_rounds": 10,  # login is not measured here
    }
    if args.smoke:
        values |= {"duration_s": 1, "warmup_s": 0, "articles": 100, "smoke": True}
    return Options(**values), args.output.resolve()


def main(argv: list[str] | None = None) -> int:
    options, output = parse_args(sys.argv[1:] if argv is None else argv)
    bench = ReplicaBench(options)
    rows = bench.run_replicas()
    print()
    print(format_table(rows))
    output.parent.mkdir(parents=True, exist_ok=True)
    results = {"meta": bench.results.meta, "rows": [row.as_dict() for row in rows]}
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {output}")
    if options.smoke:
        print("smoke mode: checks that the harness works; its figures are not benchmarks")
    failed = [f"{row.setup}: {row.endpoint}" for row in rows if row.result.errors]
    if failed:
        print("\nruns with errors (their figures are not valid):", *failed, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
