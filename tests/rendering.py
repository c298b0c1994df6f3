"""Rendering the template and running a rendered service's own checks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import copier

BIN_DIR = Path(sys.executable).parent
# A hang guard, not a speed check: a generated suite takes 6-10 minutes on a busy 2-core
# machine (the worker tests wait on real leases), more under a load of other suites.
DEFAULT_TIMEOUT = 1200
# The generated suite's read replica tests (they build a primary and a standby of their
# own, with PostgreSQL's server programs): run by the default variant's PostgreSQL suite
# on this host, deselected where running them again would prove nothing new.
READ_REPLICA_TESTS = "tests/e2e/test_read_replicas.py"


@dataclass
class SuiteRun:
    variant: str
    step: str
    ok: bool
    seconds: float
    backend: str = ""


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Template Tests",
        "GIT_AUTHOR_EMAIL": "tests@example.com",
        "GIT_COMMITTER_NAME": "Template Tests",
        "GIT_COMMITTER_EMAIL": "tests@example.com",
    }
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return result.stdout


def variant_name(answers: dict[str, Any]) -> str:
    return "-".join(str(value) for _, value in sorted(answers.items())) or "defaults"


def render(
    template: Path,
    destination: Path,
    answers: dict[str, Any] | None = None,
    **options: Any,
) -> Path:
    options = {"defaults": True, "unsafe": True, "quiet": True, "vcs_ref": "HEAD", **options}
    copier.run_copy(str(template), destination, data=answers or {}, **options)
    return destination


def run_in_service(
    project: Path,
    command: list[str],
    *,
    variant: str,
    step: str,
    env: dict[str, str | None] | None = None,
    backend: str = "",
    runs: list[SuiteRun] | None = None,
    timeout: int = DEFAULT_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run a command in a rendered project; fail with its own output, naming the variant."""
    full_env = {**os.environ, "PYTHONPATH": str(project)}
    # The template's environment has pytest-xdist and a generated service's has not; its
    # plugins (and schemathesis's xdist reporting, which loaded at session end once made
    # a passing generated suite fail) stay out of the service's own runs.
    full_env["PYTEST_ADDOPTS"] = " ".join(
        filter(None, [os.environ.get("PYTEST_ADDOPTS", ""), "-p no:xdist"])
    )
    full_env.pop("VIRTUAL_ENV", None)
    for name, value in (env or {}).items():  # None unsets a variable
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    started = time.perf_counter()
    result = subprocess.run(
        command,
        cwd=project,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if runs is not None:
        runs.append(SuiteRun(variant, step, result.returncode == 0, elapsed, backend))
    if result.returncode != 0:
        raise AssertionError(
            f"[{variant}] {step} failed (exit {result.returncode}) in {project}\n"
            f"$ {' '.join(command)}\n--- stdout ---\n{result.stdout[-12000:]}\n"
            f"--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


def tool(name: str) -> str:
    return str(BIN_DIR / name)
