"""The generated service's dependencies: locked at copy time, floors that work and are
past known vulnerabilities, checkers pinned, and an audit of what gets installed."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import REPO_ROOT
from tests.matrix import all_variants
from tests.rendering import SuiteRun, render, run_in_service

spec = importlib.util.spec_from_file_location(
    "template_ext_context", REPO_ROOT / "extensions/context.py"
)
assert spec is not None
assert spec.loader is not None
context = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = context
spec.loader.exec_module(context)

# Published advisories and the first release that fixes them: no floor may allow less.
FIXED_IN = {
    "starlette": ("0.49.1", "CVE-2025-62727"),
    "python-multipart": ("0.0.30", "CVE-2026-24486, CVE-2026-40347, CVE-2026-42561"),
}
DEFAULT_ANSWERS = {"storage_backend": "local", "email_provider": "smtp", "token_transport": "body"}
# Checkers whose new releases add rules or errors: pinned exactly.
PINNED_TOOLS = {"ruff", "mypy", "import-linter"}


def every_requirement() -> list[Requirement]:
    requirements = []
    for answers in all_variants():
        runtime, dev = context.dependencies_for(answers)
        requirements += [Requirement(line) for line in runtime + dev]
    return requirements


def floor(requirement: Requirement) -> Version | None:
    for specifier in requirement.specifier:
        if specifier.operator in {">=", "=="}:
            return Version(specifier.version)
    return None


def test_floors_are_past_known_vulnerabilities() -> None:
    for requirement in every_requirement():
        if requirement.name in FIXED_IN:
            fixed, advisories = FIXED_IN[requirement.name]
            lowest = floor(requirement)
            assert lowest is not None, f"{requirement} has no floor"
            assert lowest >= Version(fixed), f"{requirement} allows {advisories}"


def test_checkers_are_pinned_exactly() -> None:
    pinned = {
        requirement.name: str(requirement.specifier)
        for requirement in every_requirement()
        if requirement.name in PINNED_TOOLS
    }
    assert set(pinned) == PINNED_TOOLS
    assert all(specifier.startswith("==") for specifier in pinned.values()), pinned


def uv() -> str:
    found = shutil.which("uv")
    assert found, "uv is not on PATH (scripts/test puts it there)"
    return found


@pytest.fixture(scope="module")
def service(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(template_repo, tmp_path_factory.mktemp("deps") / "svc")


def test_no_slug_names_a_locked_package(service: Path) -> None:
    """Every package of a fresh lock, transitive ones too (`rich`), is refused as a slug:
    a project named like it depends on itself and `uv lock` fails. When this fails, a new
    release brought a dependency: add it to extensions/locked_dependencies.txt."""
    validation_spec = importlib.util.spec_from_file_location(
        "template_ext_validation", REPO_ROOT / "extensions/validation.py"
    )
    assert validation_spec is not None
    assert validation_spec.loader is not None
    validation = importlib.util.module_from_spec(validation_spec)
    validation_spec.loader.exec_module(validation)
    lock = tomllib.loads((service / "uv.lock").read_text())
    locked = {package["name"] for package in lock["package"] if "editable" not in package["source"]}
    assert "rich" in locked
    assert sorted(name for name in locked if not validation.slug_error(name)) == []


def test_copy_writes_a_lock_that_install_and_ci_use(service: Path) -> None:
    assert (service / "uv.lock").is_file(), "the copy-time task wrote no uv.lock"
    run_in_service(service, [uv(), "lock", "--check"], variant="defaults", step="uv lock --check")
    assert "uv sync --locked" in (service / "Makefile").read_text()
    workflow = (service / ".github/workflows/ci.yml").read_text()
    assert 'UV_LOCKED: "1"' in workflow


def test_make_refuses_a_stale_lock_instead_of_relocking(service: Path, tmp_path: Path) -> None:
    """`make lint` after an edit of pyproject.toml without `make lock`: the Makefile's
    `uv run --locked` fails and says so; a plain `uv run` re-resolved uv.lock silently."""
    project = tmp_path / "svc"
    shutil.copytree(service, project, ignore=shutil.ignore_patterns(".venv"))
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "dependencies = [\n", 'dependencies = [\n    "tenacity>=8",\n', 1
        )
    )
    lock = (project / "uv.lock").read_bytes()
    environment = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}

    result = subprocess.run(
        ["make", "lint"], cwd=project, env=environment, capture_output=True, text=True
    )

    assert result.returncode != 0, result.stdout
    assert "--locked" in result.stderr, result.stderr
    assert (project / "uv.lock").read_bytes() == lock


OSV_API = "https://api.osv.dev"


def audit(project: Path, variant: str) -> None:
    """`uv audit` of the locked set against the OSV database. Where OSV cannot be reached
    (no DNS or no route: this project's own CI machine reaches only the package indexes)
    the test skips and says so with uv's cause; the template's GitHub CI runs it."""
    result = subprocess.run(
        [uv(), "audit", "--frozen", "--preview-features", "audit-command"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 and f"error sending request for url ({OSV_API}" in output:
        causes = [line.strip() for line in output.splitlines() if "cause:" in line]
        pytest.skip(
            f"[{variant}] NOT AUDITED: the OSV vulnerability database ({OSV_API}) is "
            f"unreachable from this machine ({causes[-1] if causes else 'no cause given'}); "
            "the template's GitHub CI and the generated service's `audit` job audit the lock"
        )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_the_ci_audit_job_audits_every_locked_package_or_fails(
    service: Path, tmp_path: Path
) -> None:
    """The generated workflow's audit step, run as GitHub runs it (`bash -eo pipefail`): it
    passes only when pip-audit looked up every locked package. Where PyPI's per-version
    JSON API (pip-audit's vulnerability service) does not answer, as on this project's CI
    machine, the step must fail (it used to pass having audited nothing), then this skips."""
    workflow = yaml.safe_load((service / ".github/workflows/ci.yml").read_text())
    [script] = [
        step["run"]
        for step in workflow["jobs"]["audit"]["steps"]
        if "pip-audit" in step.get("run", "")
    ]
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=service,
        env={**env, "RUNNER_TEMP": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    if "could not be audited" in output:
        assert result.returncode != 0, "the audit step passed having audited nothing:\n" + output
        unaudited = next(line for line in output.splitlines() if "could not be audited" in line)
        pytest.skip(
            "NOT AUDITED: PyPI's vulnerability data is unreachable from this machine "
            f"({unaudited.strip()}); the audit step failed, as it must. It audits on GitHub."
        )
    assert result.returncode == 0, output[-6000:]


def test_audit_of_the_newest_resolution(service: Path) -> None:
    audit(service, "newest")


@pytest.fixture(scope="module")
def lowest(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A service locked at the lowest versions its direct dependencies allow."""
    project = render(template_repo, tmp_path_factory.mktemp("lowest") / "svc")
    run_in_service(
        project,
        [uv(), "lock", "--resolution", "lowest-direct"],
        variant="lowest-direct",
        step="uv lock",
    )
    return project


def test_audit_of_the_lowest_resolution(lowest: Path) -> None:
    audit(lowest, "lowest-direct")


@pytest.mark.slow
def test_lowest_direct_versions_pass_lint_types_and_suite(
    lowest: Path, record_suite_run: list[SuiteRun]
) -> None:
    """Every direct dependency at its floor: the service's own checks and whole suite."""
    project = lowest
    run_in_service(project, [uv(), "sync", "--frozen"], variant="lowest-direct", step="uv sync")
    installed = run_in_service(
        project,
        [uv(), "pip", "list", "--format", "freeze"],
        variant="lowest-direct",
        step="uv pip list",
    ).stdout
    versions = {
        name.lower(): Version(version)
        for name, _, version in (line.partition("==") for line in installed.splitlines())
        if version
    }
    runtime, dev = context.dependencies_for(DEFAULT_ANSWERS)
    # Each floor is a version that installs with the others: the resolver took it as is.
    not_at_floor = {
        str(requirement): str(versions.get(requirement.name))
        for requirement in map(Requirement, runtime + dev)
        if floor(requirement) is not None and versions.get(requirement.name) != floor(requirement)
    }
    assert not_at_floor == {}, "floors that cannot be installed together"
    venv = project / ".venv/bin"
    for step, command in {
        "ruff check": [str(venv / "ruff"), "check", "."],
        "ruff format --check": [str(venv / "ruff"), "format", "--check", "."],
        "lint-imports": [str(venv / "lint-imports")],
        "mypy": [str(venv / "mypy")],
        "pytest": [str(venv / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
    }.items():
        run_in_service(
            project,
            command,
            variant="lowest-direct",
            step=step,
            runs=record_suite_run,
            backend="sqlite",
            env={"TEST_DATABASE_URL": None, "TEST_REDIS_URL": None, "PYTHONPATH": None},
        )
