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


def summarize(collapsed: Path, top: int = 25) -> dict[str, Any]:
    """Functions ranked by inclusive and by self share of the samples."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for name in set(frames):  # a recursive function counts once per sample
            inclusive[name] += count

    def ranked(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": name, "share": round(count / total, 4) if total else 0.0}
            for name, count in counter.most_common(top)
        ]

    return {"samples": total, "inclusive": ranked(inclusive), "self": ranked(own)}


def format_summary(title: str, summary: dict[str, Any], top: int = 15) -> str:
    lines = [f"profile: {title} ({summary['samples']} samples)", "  inclusive:"]
    lines += [f"    {e['share']:6.1%}  {e['function']}" for e in summary["inclusive"][:top]]
    lines.append("  self:")
    lines += [f"    {e['share']:6.1%}  {e['function']}" for e in summary["self"][:top]]
    return "\n".join(lines)
