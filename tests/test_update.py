"""`copier update` from the previous release to this working tree, as a user runs it."""

from __future__ import annotations

import filecmp
import re
import subprocess
import sys
from pathlib import Path

import copier
import pytest

from tests.conftest import REPO_ROOT, TEMPLATE_TAG, copy_working_tree
from tests.rendering import git, render, run_in_service, tool

CHANGELOG = REPO_ROOT / "CHANGELOG.md"
USER_ROUTE = "app/routes/team_ping.py"
USER_ROUTE_TEXT = '''"""A route a team added after generating the service."""

from fastapi import APIRouter

router = APIRouter()


@router.get("/ping")
async def ping() -> dict[str, str]:
    """Answer pong."""
    return {"ping": "pong"}
'''
README_NOTE = "\n## Team notes\n\nDeploys go through the platform team's pipeline.\n"


def previous_release() -> tuple[str, str]:
    """(version, commit) of the newest release in CHANGELOG.md."""
    match = re.search(
        r"^## \[(\d+\.\d+\.\d+)\] - \S+ \(commit ([0-9a-f]{7,40})\)",
        CHANGELOG.read_text(),
        re.M,
    )
    assert match, "CHANGELOG.md names no release with its commit"
    return match.group(1), match.group(2)


@pytest.fixture(scope="module")
def release_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A template repository holding the previous release and, tagged newer, the working tree."""
    version, commit = previous_release()
    repo = tmp_path_factory.mktemp("releases")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive, check=True)
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--message", f"release {version}")
    git(repo, "tag", f"v{version}")
    git(repo, "rm", "-r", "--quiet", ".")
    copy_working_tree(repo)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--allow-empty", "--message", "working tree")
    git(repo, "tag", TEMPLATE_TAG)
    return repo


def generate_old_service(repo: Path, destination: Path, answers: dict[str, str]) -> Path:
    version, _ = previous_release()
    copier.run_copy(
        str(repo),
        destination,
        data=answers,
        defaults=True,
        unsafe=True,
        quiet=True,
        vcs_ref=f"v{version}",
    )
    git(destination, "init", "--quiet", "--initial-branch=main")
    git(destination, "add", "--all")
    git(destination, "commit", "--quiet", "--message", "generated")
    return destination


def apply_user_edits(project: Path) -> None:
    (project / USER_ROUTE).write_text(USER_ROUTE_TEXT)
    config = project / "app/core/config.py"
    config.write_text(
        config.read_text().replace(
            "access_token_expire_minutes: int = Field(default=30,",
            "access_token_expire_minutes: int = Field(default=15,",
        )
    )
    with (project / "README.md").open("a") as readme:
        readme.write(README_NOTE)
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--message", "team edits")


def update(project: Path, **answers: str) -> None:
    copier.run_update(
        project,
        data=answers,
        defaults=True,
        overwrite=True,
        unsafe=True,
        quiet=True,
        vcs_ref=TEMPLATE_TAG,
        conflict="inline",
    )


def assert_clean_merge(project: Path) -> None:
    status = git(project, "status", "--porcelain")
    unmerged = [line for line in status.splitlines() if line[:2] in {"UU", "AA", "DU", "UD"}]
    assert unmerged == [], status
    assert list(project.rglob("*.rej")) == []
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            text = path.read_text(errors="ignore")
            assert "<<<<<<< " not in text, f"conflict markers left in {path}"


def differing_files(left: Path, right: Path) -> set[str]:
    ignored = {".git", ".env", "__pycache__", ".mypy_cache", ".ruff_cache"}
    differences: set[str] = set()

    def walk(comparison: filecmp.dircmp[str], prefix: str) -> None:
        for name in comparison.left_only + comparison.right_only + comparison.diff_files:
            if name not in ignored:
                differences.add(prefix + name)
        for name, sub in comparison.subdirs.items():
            if name not in ignored:
                walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(left, right, ignore=list(ignored)), "")
    return differences


def test_update_keeps_user_edits_and_matches_a_fresh_render(
    release_repo: Path, tmp_path: Path, mypy_cache_dir: Path
) -> None:
    project = generate_old_service(release_repo, tmp_path / "service", {})
    apply_user_edits(project)

    update(project)

    assert_clean_merge(project)
    assert (project / USER_ROUTE).read_text() == USER_ROUTE_TEXT
    assert "Field(default=15," in (project / "app/core/config.py").read_text()
    assert (project / "README.md").read_text().endswith(README_NOTE)
    assert f"_commit: {TEMPLATE_TAG}" in (project / ".copier-answers.yml").read_text()
    fresh = render(release_repo, tmp_path / "fresh", vcs_ref=TEMPLATE_TAG)
    assert differing_files(project, fresh) == {
        USER_ROUTE,
        "app/core/config.py",
        "README.md",
    }
    for step, command in {
        "ruff check": [tool("ruff"), "check", "."],
        "ruff format --check": [tool("ruff"), "format", "--check", "."],
        "mypy": [tool("mypy"), "--cache-dir", str(mypy_cache_dir)],
        "pytest": [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
    }.items():
        run_in_service(
            project,
            command,
            variant="updated",
            step=step,
            env={"TEST_DATABASE_URL": None, "TEST_REDIS_URL": None},
        )


def test_update_can_change_an_answer(release_repo: Path, tmp_path: Path) -> None:
    project = generate_old_service(release_repo, tmp_path / "service", {"token_transport": "body"})

    update(project, token_transport="cookie")

    assert_clean_merge(project)
    assert "token_transport: cookie" in (project / ".copier-answers.yml").read_text()
    transport = (project / "app/routes/token_transport.py").read_text()
    assert "verify_csrf" in transport
    assert "HTTPBearer" not in transport
    assert (project / "tests/e2e/test_cookie_transport.py").is_file()
    assert not (project / "tests/e2e/test_body_transport.py").exists()
    fresh = render(
        release_repo,
        tmp_path / "fresh",
        {"token_transport": "cookie"},
        vcs_ref=TEMPLATE_TAG,
    )
    assert differing_files(project, fresh) == set()
    run_in_service(
        project,
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        variant="updated:token_transport=cookie",
        step="pytest",
        env={"TEST_DATABASE_URL": None, "TEST_REDIS_URL": None},
    )


def test_copy_from_a_plain_folder_works_without_git(tmp_path: Path) -> None:
    source = tmp_path / "template-download"
    copy_working_tree(source)

    project = tmp_path / "svc"
    copier.run_copy(str(source), project, defaults=True, unsafe=True, quiet=True)

    assert (project / "app/main.py").is_file()
    answers = (project / ".copier-answers.yml").read_text()
    assert "_commit" not in answers  # no version to update from: documented in the README


def test_copy_from_a_dirty_checkout(template_repo: Path, tmp_path: Path) -> None:
    """Documented: the newest tag is rendered as committed; `--vcs-ref HEAD` adds the edits."""
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "--quiet", str(template_repo), str(checkout))
    readme = checkout / "template/README.md.jinja"
    readme.write_text(readme.read_text() + "\nUncommitted line.\n")

    copier.run_copy(str(checkout), tmp_path / "tagged", defaults=True, unsafe=True, quiet=True)
    with pytest.warns(copier.errors.DirtyLocalWarning):
        copier.run_copy(
            str(checkout), tmp_path / "head", defaults=True, unsafe=True, quiet=True, vcs_ref="HEAD"
        )

    assert "Uncommitted line." not in (tmp_path / "tagged/README.md").read_text()
    assert (tmp_path / "head/README.md").read_text().endswith("Uncommitted line.\n")
