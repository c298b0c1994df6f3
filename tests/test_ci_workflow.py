"""The template's CI runs its strongest tests: real services in every job that runs tests,
and a test skipped for want of them fails the run instead of passing quietly. The
generated service's workflows pass actionlint, with ShellCheck on their `run:` scripts,
for every `python_version` (the answer its workflow is written with)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.matrix import choice_values, questions
from tests.rendering import render, tool

WORKFLOW = REPO_ROOT / ".github/workflows/ci.yml"


def test_every_job_that_runs_tests_has_postgres_redis_and_the_guard() -> None:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    testing = {
        name: job
        for name, job in jobs.items()
        if any("scripts/test" in step.get("run", "") for step in job["steps"])
    }
    assert set(testing) == {"generic", "exhaustive", "variant"}
    for name, job in testing.items():
        assert {"postgres", "redis"} <= set(job.get("services", {})), name
        env = job["env"]
        assert env["TEST_DATABASE_URL"].startswith("postgresql+asyncpg://"), name
        assert env["TEST_REDIS_URL"].startswith("redis://"), name
        assert env["REQUIRE_SERVICES"] == "1", name


def test_ci_run_sets_the_guard() -> None:
    assert "export REQUIRE_SERVICES=1" in (REPO_ROOT / ".ci/run").read_text()


def _run_with_guard(
    tmp_path: Path, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / "test_needs_services.py"
    test_file.write_text(
        "import pytest\n\n"
        "def test_needs_postgres():\n"
        "    pytest.skip('set TEST_DATABASE_URL')\n\n"
        "@pytest.mark.skipif(True, reason='needs TEST_REDIS_URL')\n"
        "def test_needs_redis():\n"
        "    pass\n\n"
        "def test_skipped_for_another_reason():\n"
        "    pytest.skip('not on this platform')\n"
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-q",
            str(test_file),
            *args,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_guard_turns_service_skips_into_failures(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if k not in {"REQUIRE_SERVICES"}}
    services = {"TEST_DATABASE_URL": "postgresql+asyncpg://x/y", "TEST_REDIS_URL": "redis://x"}

    quiet = _run_with_guard(tmp_path, env=base | services)
    assert "3 skipped" in quiet.stdout, quiet.stdout

    guarded = _run_with_guard(tmp_path, "--require-services", env=base | services)
    assert guarded.returncode != 0
    assert "1 failed, 1 skipped, 1 error" in guarded.stdout, guarded.stdout

    by_env = _run_with_guard(tmp_path, env=base | services | {"REQUIRE_SERVICES": "1"})
    assert "1 failed, 1 skipped, 1 error" in by_env.stdout, by_env.stdout

    without = {k: v for k, v in base.items() if k not in services}
    missing = _run_with_guard(tmp_path, "--require-services", env=without)
    assert missing.returncode != 0
    assert "TEST_DATABASE_URL, TEST_REDIS_URL not set" in missing.stderr


# --- The generated service's workflows: actionlint (zizmor: tests/test_template_quality.py) ---


def actionlint(project: Path, *workflows: Path) -> subprocess.CompletedProcess[str]:
    """actionlint on the given workflow files, with the environment's ShellCheck on PATH
    (actionlint checks every `run:` script with it when it finds it, and says so)."""
    return subprocess.run(
        [tool("actionlint"), "-verbose", "-no-color", *map(str, workflows)],
        cwd=project,
        env={
            **os.environ,
            "PATH": f"{Path(tool('shellcheck')).parent}{os.pathsep}{os.environ['PATH']}",
        },
        capture_output=True,
        text=True,
        check=False,
    )


def assert_shellcheck_ran(result: subprocess.CompletedProcess[str]) -> None:
    assert 'Rule "shellcheck" was disabled' not in result.stderr, result.stderr


@pytest.mark.parametrize("python_version", choice_values(questions()["python_version"]))
def test_generated_workflows_pass_actionlint(
    template_repo: Path, tmp_path: Path, python_version: str
) -> None:
    # The workflows are the whole check: no lock needed (tasks skipped, a render in ~2 s).
    project = render(
        template_repo, tmp_path / "svc", {"python_version": python_version}, skip_tasks=True
    )
    workflows = sorted((project / ".github/workflows").glob("*.yml"))
    assert workflows, "the service has no workflow"
    result = actionlint(project, *workflows)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_shellcheck_ran(result)


def test_the_templates_own_workflow_passes_actionlint_and_zizmor() -> None:
    """The bar the generated workflows meet holds for this repository's CI too."""
    result = actionlint(REPO_ROOT, WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_shellcheck_ran(result)
    audit = subprocess.run(
        [tool("zizmor"), "--offline", "--min-severity", "low", str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_actionlint_and_shellcheck_catch_a_broken_workflow(tmp_path: Path) -> None:
    """The linter can fail: an expression of the wrong type and an unquoted variable."""
    workflow = tmp_path / ".github/workflows/broken.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(
        "on: push\n"
        "permissions: {}\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-latest\n"
        "    timeout-minutes: ten\n"
        "    steps:\n"
        "      - run: echo $HOME\n"
    )
    result = actionlint(tmp_path, workflow)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[syntax-check]" in result.stdout, result.stdout
    assert "SC2086" in result.stdout, result.stdout
    assert_shellcheck_ran(result)
