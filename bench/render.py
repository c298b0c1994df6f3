"""Rendering the template's default variant, timing `copier copy` as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RENDER_TIMEOUT_S = 300
_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Benchmark",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Benchmark",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **_GIT_IDENTITY},
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout


def snapshot(source: Path, destination: Path) -> Path:
    """A one-commit git repository of `source`'s working tree, uncommitted edits included,
    so the benchmark measures exactly what is checked out (as the generation tests do)."""
    listed = _git(source, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    for name in filter(None, listed.split("\0")):
        if (source / name).is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target)
    _git(destination, "init", "--quiet", "--initial-branch=main")
    _git(destination, "add", "--all")
    _git(destination, "commit", "--quiet", "--message", "benchmark snapshot")
    return destination


def copier_copy(template: Path, destination: Path) -> float:
    """Render the default answers into `destination`; return the wall time of the command.

    Timed as the `copier` CLI in a fresh process, interpreter start-up and imports
    included, because that is what someone generating a service waits for.
    """
    copier = Path(sys.executable).parent / "copier"
    argv = [
        str(copier),
        "copy",
        "--trust",  # the template loads its own Jinja extensions
        "--defaults",
        "--quiet",
        "--vcs-ref=HEAD",
        str(template),
        str(destination),
    ]
    started = time.perf_counter()
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"copier copy failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return elapsed
