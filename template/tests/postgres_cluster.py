"""Throwaway PostgreSQL servers for the tests that need servers of their own: a primary
(initdb into a temporary directory, a free loopback port) and a streaming standby made
from it with `pg_basebackup -R`, which the tests can pause, stop and start.

Never the shared server the rest of the suite uses. Needs PostgreSQL's server programs
(initdb, pg_ctl, pg_basebackup, postgres): found through `PG_BIN`, `pg_config
--bindir`, `/usr/lib/postgresql/<version>/bin` or `PATH`. As root they run as the
`postgres` user (initdb refuses root). Standard library only: the benchmark harness
loads this file from a rendered service, outside its test suite.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROGRAMS = ("initdb", "pg_ctl", "pg_basebackup", "postgres")
COMMAND_TIMEOUT_SECONDS = 120


def server_programs() -> Path | None:
    """The directory holding PostgreSQL's server programs, or None."""
    candidates = []
    if configured := os.environ.get("PG_BIN"):
        candidates.append(Path(configured))
    if pg_config := shutil.which("pg_config"):
        found = subprocess.run(  # noqa: S603  (a program found on PATH, fixed arguments)
            [pg_config, "--bindir"], capture_output=True, text=True, check=False, timeout=30
        )
        candidates.append(Path(found.stdout.strip()))
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda path: path.parent.name, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    for directory in candidates:
        if all((directory / program).is_file() for program in PROGRAMS):
            return directory
    return None


def unavailable_reason() -> str | None:
    """Why no throwaway server can run here, or None when one can."""
    if server_programs() is None:
        return (
            f"PostgreSQL's server programs ({', '.join(PROGRAMS)}) were not found: install "
            "the PostgreSQL server package or point PG_BIN at its bin directory"
        )
    if os.geteuid() == 0 and not (shutil.which("runuser") and _user_exists("postgres")):
        return "running as root needs runuser and a postgres user to run PostgreSQL as"
    return None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    """One PostgreSQL server: a data directory under `root`, listening on `port`."""

    programs: Path
    root: Path
    name: str
    port: int

    @property
    def data(self) -> Path:
        return self.root / self.name

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of `database` on this server (asyncpg, trust auth)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, program: str, *arguments: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        command = [*prefix, str(self.programs / program), *arguments]
        result = subprocess.run(  # noqa: S603  (PostgreSQL's programs, arguments of our own)
            command, capture_output=True, text=True, check=False, timeout=COMMAND_TIMEOUT_SECONDS
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(arguments)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n{self.log_tail()}"
            )

    def start(self, *settings: str) -> None:
        """Start the server; `settings` are `name=value` options of postgres."""
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-k {self.root}",
            "-c fsync=off",  # throwaway data: nothing to keep across a crash
            "-c max_connections=100",
            *(f"-c {setting}" for setting in settings),
        ]
        where = ["-D", str(self.data), "-l", str(self.log)]
        self.run("pg_ctl", *where, "-o", " ".join(options), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def signal(self, number: int) -> None:
        """Send signal `number` to the postmaster and every process it started (its
        backends among them): SIGSTOP makes a server that stops answering with its
        connections open, as a hung host does; SIGCONT lets it go on."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        processes = [postmaster]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):  # a process that ended meanwhile
                # pid (comm) state ppid ...: comm may hold spaces, so split after ")".
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    processes.append(int(stat.parent.name))
        for pid in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class ReplicatedPostgres:
    """A primary and one streaming standby of it (asynchronous unless a database asks
    for more with `synchronous_commit`: every standby is a synchronous candidate)."""

    # Both servers log the statements of a database that asks for it
    # (ALTER DATABASE ... SET log_statement = 'all'), each line naming its database.
    LOG_SETTINGS = ("log_line_prefix='%m [%p] db=%d '",)

    def __init__(self, programs: Path, root: Path) -> None:
        self.root = root
        self.primary = Server(programs, root, "primary", free_port())
        self.standby = Server(programs, root, "standby", free_port())

    @classmethod
    def create(cls) -> ReplicatedPostgres:
        """Make, start and connect both servers (a few seconds); `close` removes them."""
        programs = server_programs()
        if programs is None:
            raise RuntimeError(unavailable_reason())
        # Not a pytest tmp dir: the postgres user must be able to enter it.
        root = Path(tempfile.mkdtemp(prefix="pg-replicas-"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        cluster = cls(programs, root)
        try:
            cluster._build()
        except BaseException:
            cluster.close()
            raise
        return cluster

    def _build(self) -> None:
        primary = self.primary
        initdb = ["-D", str(primary.data), "-U", "postgres", "-A", "trust"]
        primary.run("initdb", *initdb, "--no-sync", "--no-instructions")
        primary.start(
            "wal_level=replica",
            "max_wal_senders=5",
            # Commits wait for the standby only where a database sets synchronous_commit
            # to remote_apply; everywhere else they are local, so a stopped or paused
            # standby never holds a commit up.
            "synchronous_commit=local",
            "synchronous_standby_names='*'",
            *self.LOG_SETTINGS,
        )
        source = ["-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"]
        copy = ["-D", str(self.standby.data), "-R", "-X", "stream", "-c", "fast", "--no-sync"]
        primary.run("pg_basebackup", *source, *copy)
        self.start_standby()

    def start_standby(self) -> None:
        # Feedback: the primary keeps rows the standby's readers still see, so replay
        # does not cancel their queries.
        self.standby.start("hot_standby_feedback=on", *self.LOG_SETTINGS)

    def close(self) -> None:
        for server in (self.standby, self.primary):
            if server.running:
                with contextlib.suppress(RuntimeError):  # removed below, whatever its state
                    server.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
