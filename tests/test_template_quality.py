"""The template repository's own Python (tests, extensions) is held to the same bar."""

import os
import re
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.rendering import render, tool


def test_template_code_is_ruff_clean() -> None:
    for command in (
        ["check", "tests", "extensions", "tasks"],
        ["format", "--check", "tests", "extensions", "tasks"],
    ):
        result = subprocess.run(
            [tool("ruff"), *command], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


# --- The generated project's hygiene: workflows, Dependabot, pre-commit, the app object ---

SHA_PIN = re.compile(r"^\s*-?\s*uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40})  # v\d+(\.\d+)*$")


@pytest.fixture(scope="module")
def service(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(template_repo, tmp_path_factory.mktemp("hygiene") / "svc")


def test_workflows_pass_zizmor(service: Path) -> None:
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--min-severity", "low", ".github"],
        cwd=service,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actions_are_pinned_by_commit_with_least_permissions(service: Path) -> None:
    for workflow in (service / ".github/workflows").glob("*.yml"):
        text = workflow.read_text()
        uses = [line for line in text.splitlines() if "uses:" in line]
        assert uses, workflow
        unpinned = [line for line in uses if not SHA_PIN.match(line)]
        assert unpinned == [], f"{workflow.name}: actions not pinned by commit: {unpinned}"
        parsed = yaml.safe_load(text)
        assert parsed["permissions"] == {"contents": "read"}, workflow.name
        for job in parsed["jobs"].values():
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False


def test_dependabot_updates_uv_actions_and_docker_grouped_with_a_cooldown(service: Path) -> None:
    config = yaml.safe_load((service / ".github/dependabot.yml").read_text())
    updates = {update["package-ecosystem"]: update for update in config["updates"]}
    assert set(updates) == {"uv", "github-actions", "docker"}
    for update in updates.values():
        assert update["groups"], update
        assert update["cooldown"]["default-days"] >= 7


def test_pre_commit_runs_what_make_check_runs(service: Path) -> None:
    config = yaml.safe_load((service / ".pre-commit-config.yaml").read_text())
    entries = " | ".join(hook["entry"] for repo in config["repos"] for hook in repo["hooks"])
    for command in ("ruff check", "ruff format", "mypy", "lint-imports", "uv lock --check"):
        assert command in entries


def test_coverage_gate_is_set(service: Path) -> None:
    coverage = tomllib.loads((service / "pyproject.toml").read_text())["tool"]["coverage"]
    assert coverage["report"]["fail_under"] >= 85
    assert "--cov" in (service / "Makefile").read_text()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port"],
        ["-m", "fastapi", "run", "app/main.py", "--host", "127.0.0.1", "--port"],
        ["-m", "fastapi", "run", "--host", "127.0.0.1", "--port"],
    ],
    ids=["uvicorn app.main:app", "fastapi run app/main.py", "fastapi run (pyproject entrypoint)"],
)
def test_the_module_level_app_serves(service: Path, command: list[str]) -> None:
    """`uvicorn app.main:app` and the FastAPI CLI find the app without --factory."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(service)}
    env.pop("VIRTUAL_ENV", None)
    server = subprocess.Popen(
        [sys.executable, *command, str(port)],
        cwd=service,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live") as answer:
                    assert answer.status == 200
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    raise AssertionError(server.communicate()[0][-4000:]) from None
                time.sleep(0.3)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_importing_app_main_builds_no_app(service: Path) -> None:
    """Tests import create_app from app.main: that must not build an app (settings, logs)."""
    script = (
        "import time; started = time.perf_counter(); import app.main as m; "
        "elapsed = time.perf_counter() - started; "
        "assert 'app' not in vars(m), 'app built on import'; "
        "print(f'import app.main: {elapsed * 1000:.0f} ms')"
    )
    env = {**os.environ, "PYTHONPATH": str(service)}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=service, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stdout)
