"""The benchmark run: render, migrate and seed, serve, drive with wrk, report, clean up."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import costs, endpoints, profiling, seed, wrk
from bench.endpoints import ENDPOINTS, ENDPOINTS_BY_KEY, Account, Endpoint
from bench.render import REPO_ROOT, copier_copy, snapshot
from bench.report import Flood, Results, Run, ServerStats
from bench.servers import Server, minimal_env

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "latest.json"
# Between runs, wait for the server to finish what the last run left queued (see _settle).
SETTLE_WINDOW_S = 0.5
SETTLE_IDLE_CPU_S = 0.05  # CPU seconds per window: 10% of one core
SETTLE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Options:
    database_url: str  # a PostgreSQL server; the run creates (and drops) its own database
    redis_url: str
    output: Path = DEFAULT_OUTPUT
    duration_s: int = 15
    warmup_s: int = 2
    threads: int = 2
    connections: int = 32
    workers: tuple[int, ...] = (1, 2)
    articles: int = 1000
    bcrypt_rounds: int = 12
    flood_connections: int = 16  # concurrent login clients
    probe_connections: int = 16  # users/me clients, alone and under the flood
    profile: tuple[str, ...] = ()  # endpoint keys, or ("auto",) for the two slowest
    template: Path = REPO_ROOT
    smoke: bool = False

    @classmethod
    def smoke_defaults(cls, **overrides: Any) -> Options:
        """Seconds, not minutes: proves the harness works; the figures mean little."""
        values: dict[str, Any] = {
            "duration_s": 1,
            "warmup_s": 0,
            "workers": (1,),
            "articles": 100,
            # Login must complete within a 1 s run; the real cost is measured by full runs.
            "bcrypt_rounds": 10,  # the least production accepts
            "smoke": True,
        }
        return cls(**(values | overrides))

    @property
    def load(self) -> wrk.Load:
        return wrk.Load(self.threads, self.connections, self.duration_s)


def _log(message: str) -> None:
    print(message, flush=True)


def _versions() -> dict[str, str]:
    names = ("fastapi", "starlette", "uvicorn", "pydantic", "sqlalchemy", "asyncpg", "redis")
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def _meta(options: Options, wrk_path: str) -> dict[str, Any]:
    def output_of(*argv: str) -> str:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        return (result.stdout + result.stderr).strip()

    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "smoke" if options.smoke else "full",
        "template_commit": output_of("git", "-C", str(options.template), "rev-parse", "HEAD"),
        "template_dirty": bool(
            output_of("git", "-C", str(options.template), "status", "--porcelain")
        ),
        "cpus": os.cpu_count(),
        # Other work on the machine skews every figure: keep the evidence with the results.
        "load_average_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": output_of(wrk_path, "--version").splitlines()[0],
        "packages": _versions(),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
    }


class Bench:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.wrk = wrk.locate_wrk()
        self.py_spy = profiling.locate_py_spy() if options.profile else None
        seed.check_redis(options.redis_url)  # fail before rendering anything
        self.results = Results(meta=_meta(options, self.wrk))
        self.logs = options.output.parent / "logs"
        # Every Redis key the app writes (cache and rate limits) starts with this.
        self.prefix = f"bench_{uuid.uuid4().hex[:12]}:"
        self.account = Account(endpoints.BENCH_EMAIL, secrets.token_urlsafe(16))
        # The login runs log in as another account: each login opens a session, an account
        # keeps at most SESSIONS_MAX_PER_USER (50), and past it the least recently used
        # end, the session of the token the other runs use among them.
        self.login_account = Account(endpoints.LOGIN_EMAIL, secrets.token_urlsafe(16))
        self.database_url = ""
        self.token = ""
        self.seeded = False
        self.secret_key = secrets.token_urlsafe(48)  # production refuses fewer than 32 chars

    # Orchestration -----------------------------------------------------------

    def run(self) -> Results:
        options = self.options
        with ExitStack() as cleanup:
            workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
            project = self._render(workdir)
            database = seed.create_database(options.database_url)
            cleanup.callback(self._drop_database, database)
            cleanup.callback(self._delete_redis_keys)
            self.database_url = seed.app_url(options.database_url, database)
            _log(f"database {database}: alembic upgrade head ...")
            seed.migrate(project, self.database_url, self._app_env(project))
            for workers in options.workers:
                self._bench_hello(workers)
                self._bench_app(project, workers)
            self._count_costs(project)
        self.results.meta["load_average_at_end"] = list(os.getloadavg())
        return self.results

    def _render(self, workdir: Path) -> Path:
        template = snapshot(self.options.template, workdir / "template")
        project = workdir / "service"
        seconds = copier_copy(template, project)
        self.results.copier_copy_s = seconds
        _log(f"copier copy (default answers): {seconds:.2f} s -> {project}")
        _log("servers run on this environment's interpreter (the shared env): no install per run")
        return project

    def _app_env(self, project: Path) -> dict[str, str]:
        return minimal_env(
            {
                # Servers run on this interpreter's environment; the project's own code
                # is imported from its rendered folder.
                "PYTHONPATH": str(project),
                "ENVIRONMENT": "production",
                "SECRET_KEY": self.secret_key,
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.options.redis_url,
                "CACHE_KEY_PREFIX": self.prefix,
                "BCRYPT_ROUNDS": str(self.options.bcrypt_rounds),
                "LOG_LEVEL": "WARNING",  # keeps log formatting off the hot path
                "LOG_JSON": "true",
                # Production's settings, as a deployment behind a proxy has them. Login
                # measures bcrypt, not 429s: the per-address limit is the highest
                # production takes and each login names another client (X-Forwarded-For
                # from the trusted loopback); the per-account one has no ceiling.
                "PUBLIC_URL": "https://bench.example.com",
                "TRUSTED_PROXIES": '["127.0.0.1"]',
                "LOGIN_RATE_LIMIT_PER_IP": "200/minute",
                "LOGIN_RATE_LIMIT_PER_ACCOUNT": "10000000/minute",
                "LOGIN_FAILURE_LIMIT_PER_ACCOUNT": "1000/hour",
                # 32 connections wait for bcrypt: a full queue would answer 503 instead.
                "PASSWORD_HASH_QUEUE_SIZE": "1000",
                "PASSWORD_HASH_MAX_WAIT_SECONDS": "60",  # the most the setting takes
                # Nor are the general API limits reached; counting them is still measured.
                "RATE_LIMIT_PER_USER": "10000000/minute",
                "RATE_LIMIT_PER_IP": "10000000/minute",
                # Production insists on a mail server. The default variant's SMTP client
                # gets a closed local port: the welcome mail of the one seeded user
                # fails fast in the background (logged), and nothing else sends mail.
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": "9",
                "SMTP_SECURITY": "none",
            }
        )

    def _bench_hello(self, workers: int) -> None:
        env = minimal_env({"PYTHONPATH": str(REPO_ROOT)})
        server = Server(
            "hello",
            "bench.hello_app:create_app",
            REPO_ROOT,
            env,
            workers,
            self._log_path("hello", workers),
        )
        with server:
            startup = server.start("/hello")
            _log(f"hello, {workers} worker(s): first response after {startup:.2f} s")
            self._measure(server, ENDPOINTS_BY_KEY["hello"])
            self._record_server(server)

    def _bench_app(self, project: Path, workers: int) -> None:
        env = self._app_env(project)
        server = Server(
            "app", "app.main:create_app", project, env, workers, self._log_path("app", workers)
        )
        with server:
            startup = server.start("/health/live")
            _log(f"app, {workers} worker(s): first /health/live response after {startup:.2f} s")
            if not self.seeded:  # once: every worker count serves the same database
                self._seed(server)
                self.seeded = True
            self.token = endpoints.login(server.base_url, self.account)
            for endpoint in ENDPOINTS:
                if endpoint.server == "app":
                    self._measure(server, endpoint)
            self._settle(server)
            self._record_server(server)  # RSS after warm-up and every endpoint's run
            self.results.floods.append(self._login_flood(server))
            if workers == 1 and self.options.profile:
                self._profile(server)

    def _count_costs(self, project: Path) -> None:
        """SQL statements, Redis commands and connections per request (`bench.costs`): one
        worker with DATABASE_ECHO on, on a Redis of its own watched with MONITOR."""
        with costs.private_redis() as (redis_url, port), ExitStack() as stack:
            env = self._app_env(project) | {
                "REDIS_URL": redis_url,
                "DATABASE_ECHO": "true",
                "LOG_LEVEL": "INFO",
            }
            server = Server(
                "app-costs", "app.main:create_app", project, env, 1, self._log_path("costs", 1)
            )
            stack.enter_context(server)
            server.start("/health/live")
            monitor = costs.Monitor(port, self.logs / "redis-monitor.log")
            stack.callback(monitor.close)
            token = endpoints.login(server.base_url, self.account)
            counted = [ENDPOINTS_BY_KEY[key] for key in costs.ENDPOINTS]
            self.results.costs = costs.count(server, monitor, counted, self.account, token)
            self.results.connections = costs.connections(
                server,
                ENDPOINTS_BY_KEY["articles_create"],
                self.account,
                token,
                self.database_url,
                port,
            )
            seed.delete_drafts(self.database_url)
        for cost in self.results.costs:
            _log(
                f"  {cost.label:<34} {cost.statements:.1f} SQL statements "
                f"({cost.transactions:.1f} transactions), {cost.redis_commands:.1f} Redis "
                f"commands (+{cost.redis_script_commands:.1f} in scripts) per request"
            )

    def _seed(self, server: Server) -> None:
        started = time.perf_counter()
        endpoints.register(server.base_url, self.account)
        endpoints.register(server.base_url, self.login_account)
        seed.seed_articles(self.database_url, self.account.email, self.options.articles)
        elapsed = time.perf_counter() - started
        _log(f"seeded 2 users (via the API) and {self.options.articles} articles in {elapsed:.2f} s")

    # Measurements ------------------------------------------------------------

    def _request(self, server: Server, endpoint: Endpoint) -> wrk.Request:
        account = self.login_account if endpoint.login_body else self.account
        return endpoints.request_for(endpoint, server.base_url, account, self.token)

    def _settle(self, server: Server) -> None:
        """Wait until the server is idle: no CPU use and no database work in progress.

        When wrk stops, the server still owes responses to requests it queued (a login
        burst leaves seconds of bcrypt work, each holding a pooled connection); measuring
        the next endpoint before that drains would charge it for the previous one.
        """
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline:
            before = server.cpu_seconds()
            time.sleep(SETTLE_WINDOW_S)
            idle_cpu = server.cpu_seconds() - before < SETTLE_IDLE_CPU_S
            if idle_cpu and (not self.database_url or not seed.busy_connections(self.database_url)):
                return
        server.check_alive()
        warning = (
            f"{server.name} ({server.workers}w) still busy {SETTLE_TIMEOUT_S:.0f}s after a run"
        )
        self.results.meta.setdefault("warnings", []).append(warning)
        _log(f"WARNING: {warning}")

    def _measure(self, server: Server, endpoint: Endpoint) -> wrk.WrkResult:
        request = self._request(server, endpoint)
        self._settle(server)
        endpoints.check(endpoint, request)
        if self.options.warmup_s:
            wrk.run(self.wrk, request, replace(self.options.load, duration_s=self.options.warmup_s))
            # Requests the warm-up left queued (whole seconds of bcrypt for login) would
            # otherwise be served first, inside the measured run, to no one.
            self._settle(server)
        cpu_before = server.cpu_seconds()
        result = wrk.run(self.wrk, request, self.options.load)
        cpu_ms = (server.cpu_seconds() - cpu_before) * 1000
        server.check_alive()
        if endpoint.key == "articles_create":
            self._settle(server)  # drafts still being written would survive the delete
            seed.delete_drafts(self.database_url)  # keep the listing at the seeded rows
        per_request = cpu_ms / result.requests if result.requests else 0.0
        run = Run(endpoint.key, endpoint.label, server.workers, result, per_request)
        self.results.runs.append(run)
        _log(
            f"  {endpoint.label:<34} {server.workers}w {result.requests_per_second:>9.1f} req/s "
            f"p50 {result.p50_ms:.2f} ms p99 {result.p99_ms:.2f} ms errors {result.errors} "
            f"cpu {per_request:.2f} ms/req"
        )
        return result

    def _record_server(self, server: Server) -> None:
        stats = ServerStats(server.name, server.workers, server.startup_s, server.worker_rss_mb())
        self.results.servers.append(stats)

    def _login_flood(self, server: Server) -> Flood:
        """users/me p99 alone, then again while `flood_connections` clients hammer login."""
        options = self.options
        probe = self._request(server, ENDPOINTS_BY_KEY["users_me"])
        probe_load = wrk.Load(1, options.probe_connections, options.duration_s)
        self._settle(server)
        alone = wrk.run(self.wrk, probe, probe_load)
        # The flood outlasts the probe at both ends, so the probe only sees flooded time.
        lead_s = 1
        flood_load = wrk.Load(1, options.flood_connections, options.duration_s + 2 * lead_s)
        flood = wrk.start(self.wrk, self._request(server, ENDPOINTS_BY_KEY["login"]), flood_load)
        try:
            time.sleep(lead_s)
            flooded = wrk.run(self.wrk, probe, probe_load)
        finally:
            login = wrk.finish(flood, flood_load)
        server.check_alive()
        self._settle(server)
        result = Flood(
            server.workers,
            options.probe_connections,
            options.flood_connections,
            alone,
            flooded,
            login,
        )
        _log(
            f"  login flood, {server.workers}w: users/me p99 {alone.p99_ms:.2f} ms alone, "
            f"{flooded.p99_ms:.2f} ms flooded (x{result.p99_ratio:.2f}); "
            f"login {login.requests_per_second:.1f} req/s"
        )
        return result

    def _profile(self, server: Server) -> None:
        assert self.py_spy is not None
        keys = list(self.options.profile)
        if keys == ["auto"]:  # the two slowest app endpoints at this worker count
            app_runs = [
                run
                for run in self.results.runs
                if run.workers == server.workers and ENDPOINTS_BY_KEY[run.endpoint].server == "app"
            ]
            app_runs.sort(key=lambda run: run.result.requests_per_second)
            keys = [run.endpoint for run in app_runs[:2]]
        for key in keys:
            endpoint = ENDPOINTS_BY_KEY[key]
            raw = self.options.output.parent / f"profile-{key}.txt"
            self._settle(server)
            spy = profiling.start(self.py_spy, server.pid, raw, self.options.duration_s)
            time.sleep(0.5)  # let py-spy attach before the load starts
            wrk.run(self.wrk, self._request(server, endpoint), self.options.load)
            profiling.finish(spy, self.options.duration_s)
            self._settle(server)
            if key == "articles_create":
                seed.delete_drafts(self.database_url)
            summary = profiling.summarize(raw)
            text = profiling.format_summary(f"{endpoint.label}, {server.workers} worker", summary)
            raw.with_name(f"profile-{key}-summary.txt").write_text(text + "\n")
            _log(text)
            self.results.profiles.append({"endpoint": key, "collapsed_stacks": str(raw)} | summary)

    # Cleanup -----------------------------------------------------------------

    def _log_path(self, name: str, workers: int) -> Path:
        return self.logs / f"{name}-{workers}w.log"

    def _drop_database(self, name: str) -> None:
        seed.drop_database(self.options.database_url, name)
        _log(f"dropped database {name}")

    def _delete_redis_keys(self) -> None:
        deleted = seed.delete_redis_keys(self.options.redis_url, self.prefix)
        _log(f"deleted {deleted} Redis keys with prefix {self.prefix!r}")


def run(options: Options) -> Results:
    if sys.platform != "linux":  # RSS and worker discovery read /proc
        raise RuntimeError("the benchmark harness needs Linux (/proc)")
    return Bench(options).run()
