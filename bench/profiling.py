"""Optional sampling profiles of a worker under load, with py-spy.

py-spy is not a dependency of the template (install it with `uv pip install py-spy`).
It records collapsed stacks ("raw" format: open them in https://www.speedscope.app or
feed them to flamegraph.pl); this module also ranks the functions by the share of
samples they appear in (inclusive) and are on top of (self), for a text summary.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

INSTALL_HINT = "py-spy is not installed: `uv pip install py-spy` (profiling is optional)"
_FRAME_RE = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def locate_py_spy() -> str:
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not found:
        raise RuntimeError(INSTALL_HINT)
    return found


def start(py_spy: str, pid: int, output: Path, duration_s: int) -> subprocess.Popen[str]:
    """Sample `pid` (and its threads, e.g. bcrypt's) for `duration_s` seconds."""
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            py_spy,
            "record",
            f"--pid={pid}",
            f"--duration={duration_s}",
            "--rate=250",
            "--format=raw",
            f"--output={output}",
            # Non-blocking: the worker is not paused to be sampled, so it runs at full speed.
            "--nonblocking",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str], duration_s: int) -> None:
    try:
        output, _ = process.communicate(timeout=duration_s + 30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise RuntimeError("py-spy did not finish in time") from None
    if process.returncode != 0:
        raise RuntimeError(f"py-spy failed ({process.returncode}):\n{output[-3000:]}")


def _short(frame: str) -> str:
    """'handle (sqlalchemy/orm/session.py:123)' -> 'sqlalchemy/orm/session.py:handle'."""
    match = _FRAME_RE.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{match['function']}"


# Frames every sample on a thread shares (process and thread start-up): ranking them says
# nothing about where a request spends its time.
_BOOTSTRAP = (
    "<frozen runpy>",
    "runpy.py",
    "click/",
    "uvicorn/__main__.py",
    "uvicorn/main.py",
    "uvicorn/server.py",
    "uvicorn/_compat.py",
    "asyncio/runners.py:Runner.run",
    "threading.py:Thread._bootstrap",
    "anyio/_backends/_asyncio.py:WorkerThread.run",
)
# Leaf frames of a thread that is waiting, not working (an idle thread-pool worker).
_IDLE_LEAVES = ("threading.py:Condition.wait", "threading.py:Event.wait", "queue.py:Queue.get")


def _package(frame: str) -> str:
    """'sqlalchemy/orm/session.py:get' -> 'sqlalchemy'; the event loop's C code -> 'uvloop'."""
    if frame == "asyncio/runners.py:Runner.run":
        return "event loop (uvloop, C: I/O, parsing, scheduling)"
    head = frame.split(":", 1)[0].split("/", 1)[0]
    return head.removesuffix(".py")


def summarize(collapsed: Path, top: int = 25) -> dict[str, Any]:
    """Where the worker's busy time goes: by package (self time), by function (self and
    inclusive, start-up frames left out), idle thread-pool waits counted apart."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    busy = idle = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        if frames[-1].startswith(_IDLE_LEAVES):
            idle += count
            continue
        busy += count
        own[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for name in set(frames):  # a recursive function counts once per sample
            if not name.startswith(_BOOTSTRAP):
                inclusive[name] += count

    def ranked(counter: Counter[str], limit: int = top) -> list[dict[str, Any]]:
        return [
            {"function": name, "share": round(count / busy, 4) if busy else 0.0}
            for name, count in counter.most_common(limit)
        ]

    return {
        "busy_samples": busy,
        "idle_thread_samples": idle,
        "by_package": ranked(packages, 15),
        "inclusive": ranked(inclusive),
        # The generated service's own functions, each with everything it calls.
        "app_inclusive": ranked(
            Counter({k: v for k, v in inclusive.items() if k.startswith("app/")})
        ),
        "self": ranked(own),
    }


def format_summary(title: str, summary: dict[str, Any], top: int = 15) -> str:
    lines = [f"profile: {title} ({summary['busy_samples']} busy samples, shares of those)"]
    for heading, key, limit in (
        ("by package (self)", "by_package", 10),
        ("the service's functions (inclusive)", "app_inclusive", top),
        ("self", "self", top),
    ):
        lines.append(f"  {heading}:")
        lines += [f"    {e['share']:6.1%}  {e['function']}" for e in summary[key][:limit]]
    return "\n".join(lines)
