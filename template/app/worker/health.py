"""The liveness of the background processes: a heartbeat file each one's event loop
touches, and the check of it.

`python -m app.worker.health [worker|scheduler]` (worker when not given) exits 0 while
that process's heartbeat is fresh and 1 otherwise: the container health check and the
Kubernetes liveness probe of the worker and of the scheduler. A loop that is blocked or
a process that hangs stops the heartbeat; the web app's readiness never looks at them.
Each process has a file of its own, so a worker and a scheduler on one machine
(`make worker`, `make scheduler`) do not answer for each other.
"""

import sys
import tempfile
import time
from pathlib import Path

import anyio

HEARTBEAT_FILES = {
    process: Path(tempfile.gettempdir()) / f"{process}.heartbeat"
    for process in ("worker", "scheduler")
}
HEARTBEAT_SECONDS = 10
# Missed beats before the process counts as dead.
STALE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS


async def beat(path: Path, every: float = HEARTBEAT_SECONDS) -> None:
    """Touch `path` every `every` seconds, until cancelled."""
    while True:
        await anyio.to_thread.run_sync(path.touch)
        await anyio.sleep(every)


def is_alive(path: Path, stale_after: float = STALE_AFTER_SECONDS) -> bool:
    try:
        return time.time() - path.stat().st_mtime < stale_after
    except FileNotFoundError:
        return False


def main(arguments: list[str]) -> int:
    """The exit status of the check: 0 alive, 1 not, 2 for an unknown process name."""
    process = arguments[0] if arguments else "worker"
    if process not in HEARTBEAT_FILES or len(arguments) > 1:
        print(f"usage: python -m app.worker.health [{'|'.join(HEARTBEAT_FILES)}]", file=sys.stderr)
        return 2
    return 0 if is_alive(HEARTBEAT_FILES[process]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
