"""Locating, running and parsing wrk (https://github.com/wg/wrk).

wrk's own text report is parsed (run with `--latency` for the percentile table) rather
than a Lua `done()` hook, so the numbers are exactly those a person reading wrk sees.
The parser fails loudly on output it does not understand instead of reporting zeros.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).resolve().parent / "lua" / "request.lua"
INSTALL_HINT = (
    "wrk is not installed. Install it with `apt-get install wrk` (Debian/Ubuntu, as root), "
    "`brew install wrk` (macOS) or from https://github.com/wg/wrk; "
    "the harness installs it by itself only when it runs as root on Debian/Ubuntu."
)
# Extra seconds a wrk process may take beyond its duration before it is killed.
WRK_GRACE_SECONDS = 30

_UNIT_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_LATENCY = r"([\d.]+)(us|ms|s|m|h)"
_PERCENTILE_RE = re.compile(rf"^\s*(50|75|90|99)(?:\.0+)?%\s+{_LATENCY}\s*$", re.MULTILINE)
_TOTAL_RE = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_RPS_RE = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.MULTILINE)
_SOCKET_RE = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)
_NON_2XX_RE = re.compile(r"Non-2xx or 3xx responses: (\d+)", re.MULTILINE)


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed something the parser does not understand."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    duration_s: float
    requests_per_second: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    socket_errors: dict[str, int]
    non_2xx: int

    @property
    def errors(self) -> int:
        """Everything that is not a successful response: socket errors and non-2xx/3xx."""
        return sum(self.socket_errors.values()) + self.non_2xx

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors}


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_TO_MS[unit]


def parse_output(output: str) -> WrkResult:
    """The figures of one `wrk --latency` report."""
    rps = _RPS_RE.search(output)
    total = _TOTAL_RE.search(output)
    percentiles = {int(p): _to_ms(v, u) for p, v, u in _PERCENTILE_RE.findall(output)}
    missing = [
        name
        for name, found in (
            ("Requests/sec", rps),
            ("'N requests in'", total),
            ("latency distribution (run with --latency)", len(percentiles) == 4),
        )
        if not found
    ]
    if missing or rps is None or total is None:
        raise WrkError(f"unexpected wrk output, missing {', '.join(missing)}:\n{output}")
    sockets = _SOCKET_RE.search(output)
    socket_errors = dict.fromkeys(("connect", "read", "write", "timeout"), 0)
    if sockets:  # wrk prints this line only when there was at least one socket error
        socket_errors = dict(zip(socket_errors, map(int, sockets.groups()), strict=True))
    non_2xx = _NON_2XX_RE.search(output)
    return WrkResult(
        requests=int(total.group(1)),
        duration_s=_to_ms(total.group(2), total.group(3)) / 1000,
        requests_per_second=float(rps.group(1)),
        p50_ms=percentiles[50],
        p75_ms=percentiles[75],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        socket_errors=socket_errors,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def locate_wrk(*, install: bool = True) -> str:
    """The wrk binary; installed with apt-get when missing and running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found: installing it with apt-get (running as root) ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]  # wait for a concurrent install
        for command in ([*apt, "update", "-qq"], [*apt, "install", "-y", "-qq", "wrk"]):
            result = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=600, check=False
            )
            if result.returncode != 0:
                raise WrkError(
                    f"{' '.join(command)} failed:\n{result.stderr[-3000:]}\n{INSTALL_HINT}"
                )
        found = shutil.which("wrk")
        if found:
            return found
    raise WrkError(INSTALL_HINT)


@dataclass(frozen=True, slots=True)
class Load:
    """How hard and how long wrk drives one endpoint."""

    threads: int
    connections: int
    duration_s: int
    # Generous: a queued bcrypt login can legitimately take seconds under -c32.
    timeout_s: int = 20


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    method: str = "GET"
    body: str | None = None
    token: str | None = None
    # Each request from another client address, as a proxy in front reports it
    # (X-Forwarded-For): per-address limits see many clients, not one flooding them.
    many_clients: bool = False


def command(wrk: str, request: Request, load: Load) -> tuple[list[str], dict[str, str]]:
    """The wrk command line and environment for one run (the Lua script reads the env)."""
    env = {
        **os.environ,
        "BENCH_METHOD": request.method,
        "BENCH_BODY": request.body or "",
        "BENCH_TOKEN": request.token or "",
        "BENCH_MANY_CLIENTS": "1" if request.many_clients else "",
    }
    argv = [
        wrk,
        f"--threads={load.threads}",
        f"--connections={load.connections}",
        f"--duration={load.duration_s}s",
        f"--timeout={load.timeout_s}s",
        "--latency",
        f"--script={LUA_SCRIPT}",
        request.url,
    ]
    return argv, env


def start(wrk: str, request: Request, load: Load) -> subprocess.Popen[str]:
    """Start wrk in the background (for runs that must overlap, like the login flood)."""
    argv, env = command(wrk, request, load)
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str], load: Load) -> WrkResult:
    try:
        stdout, stderr = process.communicate(timeout=load.duration_s + WRK_GRACE_SECONDS)
    except subprocess.TimeoutExpired as timeout:
        process.kill()
        process.communicate()
        raise WrkError(
            f"wrk did not finish within {load.duration_s + WRK_GRACE_SECONDS}s"
        ) from timeout
    if process.returncode != 0:
        raise WrkError(f"wrk exited with {process.returncode}:\n{stderr}\n{stdout}")
    return parse_output(stdout)


def run(wrk: str, request: Request, load: Load) -> WrkResult:
    return finish(start(wrk, request, load), load)
