"""The liveness of the background processes: a heartbeat file each one's event loop
touches, and the check of them.

`python -m app.worker.health [worker|scheduler]` (worker when not given) exits 0 while
every process of that kind on the machine beats and 1 otherwise: the container health
check and the Kubernetes liveness probe of the worker and of the scheduler. A loop that
is blocked or a process that hangs stops its heartbeat; the web app's readiness never
looks at them.

Each process has a file of its own, named by its kind, the process that owns it and its
place there: `worker.<pid of taskiq's process manager>.worker-<n>.heartbeat` for the
n-th process of `taskiq worker --workers N` (the manager starts a new one in the same
place when one dies) and `scheduler.<pid>.main.heartbeat`. So a worker and a scheduler,
two workers of one command, or two commands on one machine never answer for each other.
A process enters its file when it starts (`enter`) and beats once it is ready: one that
dies before it is ready, and its successors in a restart loop, leave the file to go
stale, and the check fails. Files whose owner no longer runs (a command that stopped,
a container that restarted with the same /tmp) count for nothing, and are removed when
a process of that kind starts.
"""

import contextlib
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import anyio

PROCESSES = ("worker", "scheduler")
HEARTBEAT_SECONDS = 10
# Missed beats before the process counts as dead.
STALE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS


def heartbeat_directory() -> Path:
    return Path(tempfile.gettempdir())


def heartbeat_file(process: str) -> Path:
    """This process's heartbeat file, as a `process` ("worker" or "scheduler")."""
    if process == "worker":
        # A process of taskiq's process manager, which names it worker-<n> and starts a
        # new one in its place when it dies.
        owner, place = os.getppid(), multiprocessing.current_process().name
    else:
        owner, place = os.getpid(), "main"
    return heartbeat_directory() / f"{process}.{owner}.{place}.heartbeat"


def heartbeat_files(process: str) -> list[Path]:
    """The heartbeat files of the `process` processes whose owner runs."""
    return [
        path for path in heartbeat_directory().glob(f"{process}.*.heartbeat") if _owner_runs(path)
    ]


def _owner_runs(path: Path) -> bool:
    fields = path.name.split(".")
    if len(fields) < 2 or not fields[1].isdecimal():
        return False
    owner = int(fields[1])
    if owner == os.getpid() and path.name.startswith("worker."):
        return False  # a pid reused by the check itself: that owner is gone
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # runs, as another user
        return True
    return True


def enter(path: Path) -> None:
    """Create `path`, dated now, unless it exists: the process has until it goes stale to
    beat. An existing one is left as it is, so a process restarted in the same place
    over and over does not pass for alive. Files of owners gone are removed."""
    process = path.name.split(".")[0]
    for other in heartbeat_directory().glob(f"{process}.*.heartbeat"):
        if not _owner_runs(other):
            other.unlink(missing_ok=True)
    with contextlib.suppress(FileExistsError):
        path.touch(exist_ok=False)


def leave(path: Path) -> None:
    """A process that stops cleanly takes its file away."""
    path.unlink(missing_ok=True)


async def beat(path: Path, every: float = HEARTBEAT_SECONDS) -> None:
    """Write this process's pid to `path` every `every` seconds, until cancelled."""
    pid = str(os.getpid())
    while True:
        await anyio.to_thread.run_sync(path.write_text, pid)
        await anyio.sleep(every)


def is_alive(process: str, stale_after: float = STALE_AFTER_SECONDS) -> bool:
    """At least one `process` process runs, and every one of them beats."""
    now, ages = time.time(), []
    for path in heartbeat_files(process):
        with contextlib.suppress(FileNotFoundError):  # its process stopped meanwhile
            ages.append(now - path.stat().st_mtime)
    return bool(ages) and max(ages) < stale_after


def main(arguments: list[str]) -> int:
    """The exit status of the check: 0 alive, 1 not, 2 for an unknown process name."""
    process = arguments[0] if arguments else "worker"
    if process not in PROCESSES or len(arguments) > 1:
        print(f"usage: python -m app.worker.health [{'|'.join(PROCESSES)}]", file=sys.stderr)
        return 2
    return 0 if is_alive(process) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
