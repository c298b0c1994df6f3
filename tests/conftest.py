"""Fixtures for the generation tests.

`template_repo` is a git repository holding the template's *working tree*
(uncommitted edits included), committed and tagged, so every test renders
exactly what a developer is looking at. Rendered services are checked with
the one shared environment this repository's tests run in.

Backends for the generated suites: SQLite + in-process cache always; PostgreSQL
and Redis too when TEST_DATABASE_URL and TEST_REDIS_URL are set (.ci/run sets
them). The end of the run says which backends ran.

`--require-services` (or REQUIRE_SERVICES=1; .ci/run and the GitHub workflow set
it) turns every skip for want of TEST_DATABASE_URL / TEST_REDIS_URL into a failure,
so a CI that lost its services fails instead of quietly running less.

With `-n auto` the run is spread over one pytest-xdist worker per core. A module's
tests stay together on one worker (its module fixtures, a compose stack or a chroot,
are built once); tests/test_variants.py is split by variant, each variant's render and
checks on one worker (ModuleOrVariantScheduling). Workers send their timing rows and
summary tables to the controller, which prints them once at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

from tests.rendering import SuiteRun, git, render, variant_name

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_TAG = "v99.0.0"  # newer than any real release, so copier picks this snapshot

suite_runs: list[SuiteRun] = []
# Tables other modules print at the end of the run: title -> lines.
summary_sections: dict[str, list[str]] = {}
SERVICE_VARIABLES = ("TEST_DATABASE_URL", "TEST_REDIS_URL")
# xdist units of few tests and many minutes (each runs a generated suite on servers of its
# own), started before the rest (ModuleOrVariantScheduling).
FIRST_UNITS = (
    "tests/test_pgbouncer.py",
    "tests/test_redis_sentinel.py",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-services",
        action="store_true",
        default=os.environ.get("REQUIRE_SERVICES") == "1",
        help="fail (not skip) tests that need TEST_DATABASE_URL / TEST_REDIS_URL",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--require-services"):
        missing = [name for name in SERVICE_VARIABLES if not os.environ.get(name)]
        if missing:
            raise pytest.UsageError(f"--require-services: {', '.join(missing)} not set")


class ModuleOrVariantScheduling(LoadScopeScheduling):
    """xdist work units: a test module, or in tests/test_variants.py one variant (its
    render, checks and suites). The `xdist_group` mark would say the same, but pytest 9.2
    ignores the node-id suffix it relies on (pytest-dev/pytest-xdist#1386)."""

    def _split_scope(self, nodeid: str) -> str:
        module, _, test = nodeid.partition("::")
        if Path(module).name == "test_variants.py" and test.endswith("]"):
            variant = test[test.index("[") + 1 : -1]
            return variant.removesuffix("-sqlite").removesuffix("-postgres")
        return module

    def _assign_work_unit(self, node: Any) -> None:
        """xdist hands out units by their number of tests, most first: a module of a few
        tests that each run a generated suite for minutes would start last and run alone
        at the end of the run. `FIRST_UNITS` go first."""
        for scope in reversed(FIRST_UNITS):
            if scope in self.workqueue:
                self.workqueue.move_to_end(scope, last=False)
        super()._assign_work_unit(node)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> ModuleOrVariantScheduling:
    return ModuleOrVariantScheduling(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the rows to the controller
        workeroutput["suite_runs"] = json.dumps([vars(run) for run in suite_runs])
        workeroutput["summary_sections"] = json.dumps(summary_sections)


def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist controller: collect a finished worker's rows and tables."""
    output = getattr(node, "workeroutput", {})
    suite_runs.extend(SuiteRun(**run) for run in json.loads(output.get("suite_runs", "[]")))
    for title, lines in json.loads(output.get("summary_sections", "{}")).items():
        summary_sections.setdefault(title, []).extend(lines)


def _skipped_for_services(report: pytest.TestReport) -> bool:
    return report.skipped and any(name in str(report.longrepr) for name in SERVICE_VARIABLES)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if item.config.getoption("--require-services") and _skipped_for_services(report):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped for want of real services under --require-services: {report.longrepr}"
        )


def _find_pythons() -> None:
    """Put every Python a `python_version` answer asks for on PATH (after the rest).

    The copy-time `uv lock` task needs an interpreter the project's requires-python
    accepts; uv finds `python3.X` on PATH. Where pyenv keeps them off PATH, add them
    here rather than let uv try to download one.
    """
    directories = []
    for version in ("3.11", "3.12", "3.13"):
        # A pyenv shim on PATH may answer "command not found" for a version that is not
        # selected: look for the interpreters themselves.
        found = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
        if found:
            directories.append(str(found[-1].parent))
    if directories:
        os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), *directories])
        # Copier runs tasks through plumbum, whose environment is a copy made at import.
        from plumbum import local

        local.env["PATH"] = os.environ["PATH"]


_find_pythons()


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
def rendered_variant(
    template_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[dict[str, Any]], Path]:
    """The render of a variant's answers, made once per session and shared by the test
    modules: read it, or copy it before running anything that writes into it."""
    renders: dict[str, Path] = {}

    def rendered(answers: dict[str, Any]) -> Path:
        name = variant_name(answers)
        if name not in renders:
            renders[name] = render(template_repo, tmp_path_factory.mktemp(name) / "svc", answers)
        return renders[name]

    return rendered


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
    if getattr(terminalreporter.config, "workeroutput", None) is not None:
        return  # a worker: the controller prints
    for title, lines in summary_sections.items():
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)
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
