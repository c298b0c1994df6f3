"""Starting uvicorn servers on 127.0.0.1, timing their start-up, reading worker RSS, stopping.

Each server runs in its own process group (start_new_session), so stopping it also ends
the worker processes a multi-worker uvicorn supervisor spawned, and nothing else.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.01
HOST = "127.0.0.1"  # never a public interface


class ServerError(RuntimeError):
    """A server did not come up, or died while it was being measured."""


def free_port() -> int:
    # The OS picks an unused port; the tiny window before uvicorn binds it is acceptable here.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def minimal_env(extra: dict[str, str]) -> dict[str, str]:
    """Only what a process needs to run, plus `extra`: no stray settings leak in from the
    caller's shell (a DEBUG=1 or DATABASE_POOL_SIZE there would skew the figures)."""
    kept = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
    return {name: os.environ[name] for name in kept if name in os.environ} | extra


@dataclass
class Server:
    """One `uvicorn --factory` server; use as a context manager (started, then stopped)."""

    name: str
    factory: str
    cwd: Path
    env: dict[str, str]
    workers: int
    log_path: Path
    port: int = field(default_factory=free_port)
    startup_s: float = 0.0
    _process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServerError(f"{self.name} is not running")
        return self._process.pid

    def start(self, ready_path: str) -> float:
        """Start the server; return seconds from spawning it to the first 2xx on `ready_path`."""
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            self.factory,
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            # Production-like: no per-request access line, warnings and errors only.
            "--no-access-log",
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "5",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            started = time.perf_counter()
            self._process = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = started + STARTUP_TIMEOUT_S
        while time.perf_counter() < deadline:
            self.check_alive()
            if _answers_2xx(self.port, ready_path):
                self.startup_s = time.perf_counter() - started
                return self.startup_s
            time.sleep(POLL_INTERVAL_S)
        self.stop()
        raise ServerError(
            f"{self.name} did not answer {ready_path} within {STARTUP_TIMEOUT_S:.0f}s; "
            f"log: {self.log_path}\n{self.log_tail()}"
        )

    def check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise ServerError(
                f"{self.name} exited with {self._process.returncode}; log: {self.log_path}\n"
                f"{self.log_tail()}"
            )

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def worker_pids(self) -> list[int]:
        """The processes serving requests: the server itself, or its spawned workers."""
        if self.workers == 1:
            return [self.pid]
        return [
            pid
            for pid in _children(self.pid)
            # uvicorn spawns workers with multiprocessing; skip helpers such as a resource
            # tracker, which are children too but serve nothing.
            if b"spawn_main" in _read_bytes(f"/proc/{pid}/cmdline")
        ]

    def worker_rss_mb(self) -> list[float]:
        return [rss_mb(pid) for pid in self.worker_pids()]

    def cpu_seconds(self) -> float:
        """CPU time the workers have used so far (all their threads: bcrypt's too)."""
        return sum(cpu_seconds(pid) for pid in self.worker_pids())

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # SIGTERM first: uvicorn shuts down gracefully and its supervisor ends its workers.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)
        # A worker that outlived its supervisor is still in the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _answers_2xx(port: int, path: str) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=1.0)
    try:
        connection.request("GET", path)
        return 200 <= connection.getresponse().status < 300
    except OSError:  # not listening yet (refused, reset) or not answering yet
        return False
    finally:
        connection.close()


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:  # the process ended meanwhile
        return b""


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _read_bytes(f"/proc/{entry.name}/stat")
        # Fields after the parenthesised command name: state, ppid, ...
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == parent:
            found.append(int(entry.name))
    return sorted(found)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat (fields 14 and 15)."""
    stat = _read_bytes(f"/proc/{pid}/stat")
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) < 13:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB, from /proc/<pid>/status (VmRSS, in kB)."""
    for line in _read_bytes(f"/proc/{pid}/status").decode().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ServerError(f"no VmRSS for process {pid} (has it exited?)")
