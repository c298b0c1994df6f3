"""The secret key is generated at copy time and never lands in the answers file or in git."""

from __future__ import annotations

import re
from pathlib import Path

from tests.rendering import git, render


def secret_from(project: Path) -> str:
    match = re.search(r"^SECRET_KEY=(\S+)$", (project / ".env").read_text(), re.MULTILINE)
    assert match, ".env has no SECRET_KEY line"
    return match.group(1)


def test_each_copy_gets_its_own_long_random_secret(template_repo: Path, tmp_path: Path) -> None:
    first = secret_from(render(template_repo, tmp_path / "one"))
    second = secret_from(render(template_repo, tmp_path / "two"))
    assert first != second
    assert len(first) >= 64


def test_secret_is_not_in_answers_and_is_git_ignored(template_repo: Path, tmp_path: Path) -> None:
    project = render(template_repo, tmp_path / "svc")
    secret = secret_from(project)
    assert secret not in (project / ".copier-answers.yml").read_text()
    git(project, "init", "--quiet")
    git(project, "add", "--all")
    tracked = git(project, "ls-files").split()
    assert ".env" not in tracked
    assert ".env.example" in tracked
    assert not any(secret.encode() in (project / name).read_bytes() for name in tracked)
