"""Results: the table, the ratios and targets the issue sets, and the JSON file."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.costs import Connections, Cost
from bench.wrk import WrkResult


@dataclass(frozen=True, slots=True)
class Run:
    endpoint: str
    label: str
    workers: int
    result: WrkResult
    # Worker CPU time (all threads) per completed request: unlike requests/s, barely moved
    # by other work on the machine, so it stays comparable on a shared CI box.
    cpu_ms_per_request: float


@dataclass(frozen=True, slots=True)
class ServerStats:
    server: str  # "hello" or "app"
    workers: int
    startup_s: float  # process spawn to first 2xx on the readiness path
    worker_rss_mb: list[float]  # after warm-up and the measured runs


@dataclass(frozen=True, slots=True)
class Flood:
    """GET /users/me latency alone, then while login is hammered at the same time."""

    workers: int
    probe_connections: int
    login_connections: int
    alone: WrkResult
    flooded: WrkResult
    login: WrkResult

    @property
    def p99_ratio(self) -> float:
        return self.flooded.p99_ms / self.alone.p99_ms if self.alone.p99_ms else float("inf")


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    measured: float | None
    unit: str
    goal: float
    stretch: float | None
    higher_is_better: bool

    def _meets(self, bound: float | None) -> bool | None:
        if self.measured is None or bound is None:
            return None
        compare: Callable[[float, float], bool] = (
            operator.ge if self.higher_is_better else operator.le
        )
        return compare(self.measured, bound)

    @property
    def met(self) -> bool | None:
        return self._meets(self.goal)

    @property
    def stretch_met(self) -> bool | None:
        return self._meets(self.stretch)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met, "stretch_met": self.stretch_met}


@dataclass
class Results:
    meta: dict[str, Any]
    copier_copy_s: float = 0.0
    runs: list[Run] = field(default_factory=list)
    servers: list[ServerStats] = field(default_factory=list)
    floods: list[Flood] = field(default_factory=list)
    profiles: list[dict[str, Any]] = field(default_factory=list)
    costs: list[Cost] = field(default_factory=list)  # per request, `bench.costs`
    connections: Connections | None = None

    def run(self, endpoint: str, workers: int) -> WrkResult | None:
        for run in self.runs:
            if run.endpoint == endpoint and run.workers == workers:
                return run.result
        return None

    def server(self, name: str, workers: int) -> ServerStats | None:
        for stats in self.servers:
            if stats.server == name and stats.workers == workers:
                return stats
        return None

    def flood(self, workers: int) -> Flood | None:
        return next((flood for flood in self.floods if flood.workers == workers), None)

    def cpu_floor_share(self, workers: int) -> float | None:
        """The floor's CPU per request as a share of users/me's: the same ratio as
        floor_share on an idle machine, and still meaningful on a busy one."""
        me = self.run_record("users_me", workers)
        floor = self.run_record("hello", workers)
        if me is None or floor is None or not me.cpu_ms_per_request:
            return None
        return floor.cpu_ms_per_request / me.cpu_ms_per_request

    def run_record(self, endpoint: str, workers: int) -> Run | None:
        return next((r for r in self.runs if r.endpoint == endpoint and r.workers == workers), None)

    def floor_share(self, workers: int) -> float | None:
        """users/me requests/s as a share of the bare FastAPI floor's."""
        me, floor = self.run("users_me", workers), self.run("hello", workers)
        if me is None or floor is None or not floor.requests_per_second:
            return None
        return me.requests_per_second / floor.requests_per_second

    def targets(self) -> list[Target]:
        share = self.floor_share(1)
        articles = self.run("articles_list", 1)
        flood = self.flood(1)
        app = self.server("app", 1)
        return [
            Target(
                "users/me rps, 1 worker, share of the bare floor",
                None if share is None else 100 * share,
                "%",
                30.0,
                40.0,
                higher_is_better=True,
            ),
            Target(
                "articles?limit=100 rps, 1 worker",
                articles.requests_per_second if articles else None,
                "req/s",
                500.0,
                None,
                higher_is_better=True,
            ),
            Target(
                "users/me p99 under login flood / alone, 1 worker",
                flood.p99_ratio if flood else None,
                "x",
                3.0,
                None,
                higher_is_better=False,
            ),
            Target(
                "one worker RSS after warm-up",
                max(app.worker_rss_mb) if app and app.worker_rss_mb else None,
                "MiB",
                150.0,
                None,
                higher_is_better=False,
            ),
            Target(
                "start to first /health/live response, 1 worker",
                app.startup_s if app else None,
                "s",
                2.0,
                None,
                higher_is_better=False,
            ),
            Target("copier copy (CLI, default answers)", self.copier_copy_s, "s", 3.0, None, False),
        ]

    def errors(self) -> list[str]:
        """Runs whose figures cannot be trusted: errors, non-2xx, or no requests at all."""
        problems = []
        named = [(f"{run.label} ({run.workers}w)", run.result) for run in self.runs]
        for flood in self.floods:
            named += [
                (f"users/me alone ({flood.workers}w)", flood.alone),
                (f"users/me under login flood ({flood.workers}w)", flood.flooded),
                (f"login flood ({flood.workers}w)", flood.login),
            ]
        for name, result in named:
            if result.errors or not result.requests:
                problems.append(
                    f"{name}: {result.requests} requests, {result.non_2xx} non-2xx/3xx, "
                    f"socket errors {result.socket_errors}"
                )
        return problems

    def as_dict(self) -> dict[str, Any]:
        worker_counts = sorted({run.workers for run in self.runs})
        return {
            "meta": self.meta,
            "copier_copy_s": self.copier_copy_s,
            "runs": [
                {
                    "endpoint": r.endpoint,
                    "label": r.label,
                    "workers": r.workers,
                    "cpu_ms_per_request": r.cpu_ms_per_request,
                }
                | r.result.as_dict()
                for r in self.runs
            ],
            "servers": [asdict(stats) for stats in self.servers],
            "login_flood": [
                {
                    "workers": f.workers,
                    "probe_connections": f.probe_connections,
                    "login_connections": f.login_connections,
                    "alone": f.alone.as_dict(),
                    "flooded": f.flooded.as_dict(),
                    "login": f.login.as_dict(),
                    "p99_ratio": f.p99_ratio,
                }
                for f in self.floods
            ],
            "ratios": {f"users_me_share_of_floor_{w}w": self.floor_share(w) for w in worker_counts}
            | {f"users_me_cpu_share_of_floor_{w}w": self.cpu_floor_share(w) for w in worker_counts}
            | {f"login_flood_p99_ratio_{f.workers}w": f.p99_ratio for f in self.floods},
            "targets": [target.as_dict() for target in self.targets()],
            "profiles": self.profiles,
            "costs": [asdict(cost) for cost in self.costs],
            "connections": asdict(self.connections) if self.connections else None,
            "errors": self.errors(),
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")


def _verdict(met: bool | None) -> str:
    return {True: "ok", False: "MISSED", None: "n/a"}[met]


def format_table(results: Results) -> str:
    header = (
        f"{'endpoint':<34} {'workers':>7} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} "
        f"{'requests':>9} {'errors':>7} {'non-2xx':>8} {'cpu ms/req':>10}"
    )
    lines = [header, "-" * len(header)]
    for run in sorted(results.runs, key=lambda run: run.workers):
        r = run.result
        socket_errors = sum(r.socket_errors.values())
        lines.append(
            f"{run.label:<34} {run.workers:>7} {r.requests_per_second:>10.1f} "
            f"{r.p50_ms:>9.2f} {r.p99_ms:>9.2f} {r.requests:>9} {socket_errors:>7} "
            f"{r.non_2xx:>8} {run.cpu_ms_per_request:>10.2f}"
        )
    return "\n".join(lines)


def format_summary(results: Results) -> str:
    lines = ["", "servers (start = spawn to first 2xx; RSS per worker after the runs):"]
    for s in results.servers:
        rss = ", ".join(f"{mb:.1f}" for mb in s.worker_rss_mb)
        lines.append(
            f"  {s.server:<6} {s.workers} worker(s): start {s.startup_s:.2f} s, RSS MiB [{rss}]"
        )
    lines.append("")
    lines.append("login flood (GET /users/me p99 alone vs while login is hammered):")
    for f in results.floods:
        lines.append(
            f"  {f.workers} worker(s): users/me c{f.probe_connections} p99 alone "
            f"{f.alone.p99_ms:.2f} ms ({f.alone.requests_per_second:.0f} req/s), under flood "
            f"{f.flooded.p99_ms:.2f} ms ({f.flooded.requests_per_second:.0f} req/s) -> "
            f"x{f.p99_ratio:.2f}; login c{f.login_connections} "
            f"{f.login.requests_per_second:.1f} req/s p99 {f.login.p99_ms:.0f} ms"
        )
    lines.append("")
    for workers in sorted({run.workers for run in results.runs}):
        share = results.floor_share(workers)
        cpu_share = results.cpu_floor_share(workers)
        if share is not None:
            by_cpu = "" if cpu_share is None else f" (by CPU per request: {100 * cpu_share:.1f}%)"
            lines.append(
                f"users/me rps / bare floor rps, {workers} worker(s): {100 * share:.1f}%{by_cpu}"
            )
    if results.costs:
        lines.append("")
        lines.append("per request (1 worker, steady state; bench/costs.py):")
        lines.append(
            f"  {'endpoint':<34} {'SQL':>5} {'transactions':>12} {'Redis sent':>10}"
            f" {'in scripts':>10}"
        )
        for cost in results.costs:
            lines.append(
                f"  {cost.label:<34} {cost.statements:>5.1f} {cost.transactions:>12.1f}"
                f" {cost.redis_commands:>10.1f} {cost.redis_script_commands:>10.1f}"
            )
    if results.connections:
        held = results.connections
        lines.append(
            f"one worker, {held.concurrent_requests} concurrent writes: at most "
            f"{held.database_sessions} database sessions, {held.redis_clients} Redis clients"
        )
    lines.append(f"copier copy: {results.copier_copy_s:.2f} s")
    cpus = results.meta.get("cpus") or 1
    load = (results.meta.get("load_average_at_start") or [0.0])[0]
    lines.append(f"machine: {cpus} CPUs, 1-minute load average {load:.2f} when the run started")
    if load > 0.5:
        lines.append(
            "WARNING: the machine was already busy when the run started; the figures are "
            "pessimistic and noisy: rerun on an idle machine before comparing"
        )
    lines.append("")
    lines.append(f"{'target':<50} {'measured':>12} {'goal':>12} {'stretch':>9}  verdict")
    for t in results.targets():
        sign = ">=" if t.higher_is_better else "<="
        measured = "n/a" if t.measured is None else f"{t.measured:.2f} {t.unit}"
        stretch = "" if t.stretch is None else f"{sign}{t.stretch:g}"
        verdict = _verdict(t.met)
        if t.stretch is not None and t.met:
            verdict += f" (stretch {_verdict(t.stretch_met)})"
        lines.append(
            f"{t.name:<50} {measured:>12} {sign + f'{t.goal:g} {t.unit}':>12} {stretch:>9}  "
            f"{verdict}"
        )
    return "\n".join(lines)
