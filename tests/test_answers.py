"""Bad answers are refused with a message that says what to type, and nothing is written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.rendering import render, tool


def copier_cli(template: Path, destination: Path, *data: str) -> subprocess.CompletedProcess[str]:
    args = [tool("copier"), "copy", "--trust", "--defaults", "--vcs-ref", "HEAD"]
    for item in data:
        args += ["--data", item]
    return subprocess.run(
        [*args, str(template), str(destination)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("project_name=", "Enter a project name"),
        (
            "project_slug=Orders_Service",
            "use lowercase letters, digits and single hyphens",
        ),
        ("project_slug=", "Enter a project slug"),
        ("project_slug=import", "is a Python keyword"),
        ("project_slug=app", "clashes with a name"),
        ("author_email=not-an-email", "type one like: jane@example.com"),
        ("author_name=  ", "Enter a name"),
        ("python_version=3.9", "Invalid choice for 'python_version'"),
        ("storage_backend=ftp", "Invalid choice for 'storage_backend'"),
        ("email_provider=carrier-pigeon", "Invalid choice for 'email_provider'"),
        ("token_transport=header", "Invalid choice for 'token_transport'"),
    ],
)
def test_bad_answer_fails_clearly_and_writes_nothing(
    template_repo: Path, tmp_path: Path, answer: str, message: str
) -> None:
    destination = tmp_path / "service"
    result = copier_cli(template_repo, destination, answer)
    assert result.returncode != 0, f"copier accepted {answer!r}"
    assert message in result.stderr.strip().splitlines()[-1], result.stderr[-2000:]
    assert not destination.exists(), "a refused answer left a half-written destination"


def test_answers_shape_the_rendered_names(template_repo: Path, tmp_path: Path) -> None:
    project = render(
        template_repo,
        tmp_path / "svc",
        {
            "project_name": "Orders Ledger",
            "author_email": "team@orders.example",
            "python_version": "3.12",
        },
    )
    pyproject = (project / "pyproject.toml").read_text()
    assert 'name = "orders-ledger"' in pyproject
    assert 'requires-python = ">=3.12"' in pyproject
    assert 'target-version = "py312"' in pyproject
    assert 'email = "team@orders.example"' in pyproject
    assert 'project_name: str = "Orders Ledger"' in (project / "app/core/config.py").read_text()
    assert "sqlite+aiosqlite:///./orders_ledger.db" in (project / ".env").read_text()
