"""Fixtures for the generation tests.

`template_repo` is a git repository holding the template's *working tree*
(uncommitted edits included), committed and tagged, so every test renders
exactly what a developer is looking at. Rendered services are checked with
the one shared environment this repository's tests run in.

Backends for the generated suites: SQLite + in-process cache always; PostgreSQL
and Redis too when TEST_DATABASE_URL and TEST_REDIS_URL are set (.ci/run sets
them). The end of the run says which backends ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.rendering import SuiteRun, git

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_TAG = "v99.0.0"  # newer than any real release, so copier picks this snapshot

suite_runs: list[SuiteRun] = []


def _working_tree_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [name for name in listed.split("\0") if name and (REPO_ROOT / name).is_file()]


def copy_working_tree(destination: Path) -> None:
    """The template as a developer sees it: tracked and new files, edits included."""
    for name in _working_tree_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    destination = tmp_path_factory.mktemp("template")
    copy_working_tree(destination)
    git(destination, "init", "--quiet", "--initial-branch=main")
    git(destination, "add", "--all")
    git(destination, "commit", "--quiet", "--message", "template snapshot for tests")
    git(destination, "tag", TEMPLATE_TAG)
    return destination


@pytest.fixture(scope="session")
def mypy_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for every render: third-party stubs are analysed once."""
    return tmp_path_factory.mktemp("mypy-cache")


def service_backends() -> list[str]:
    backends = ["sqlite"]
    if os.environ.get("TEST_DATABASE_URL") and os.environ.get("TEST_REDIS_URL"):
        backends.append("postgres")
    return backends


@pytest.fixture
def record_suite_run() -> list[SuiteRun]:
    return suite_runs


def pytest_report_header() -> str:
    if "postgres" in service_backends():
        return "generated suites: SQLite + in-process cache, and PostgreSQL + Redis"
    return (
        "generated suites: SQLite + in-process cache only "
        "(set TEST_DATABASE_URL and TEST_REDIS_URL to run them on PostgreSQL and Redis too)"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not suite_runs:
        return
    terminalreporter.section("generated service runs")
    terminalreporter.write_line(f"{'variant':<40} {'step':<28} {'result':<7} {'seconds':>8}")
    for run in suite_runs:
        result = "ok" if run.ok else "FAILED"
        terminalreporter.write_line(
            f"{run.variant:<40} {run.step:<28} {result:<7} {run.seconds:>8.1f}"
        )
    ran = sorted({run.backend for run in suite_runs if run.backend})
    terminalreporter.write_line(f"generated suites ran on: {', '.join(ran) or 'none'}")
    if "postgres" not in service_backends():
        terminalreporter.write_line(
            "PostgreSQL + Redis suites did NOT run: set TEST_DATABASE_URL and TEST_REDIS_URL"
        )
