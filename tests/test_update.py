"""`copier update` as a user runs it: through every release to this working tree over a
user's edits, and with each answer changed to each other choice."""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import copier
import pytest
from dotenv import dotenv_values
from plumbum import local

from tests.conftest import REPO_ROOT, TEMPLATE_TAG, copy_working_tree
from tests.matrix import choice_values, questions
from tests.rendering import SuiteRun, git, render, run_in_service, tool

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
# The team's lock holds an older version of a transitive dependency than a fresh lock
# would take (every release allows it): the lock migration must keep it.
TEAM_PIN = ("idna", "3.10")


RELEASE_LINE = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - \S+ \(commit ([0-9a-f]{7,40})\)", re.M)

HOST_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def releases() -> list[tuple[str, str]]:
    """(version, commit) of every release in CHANGELOG.md, oldest first."""
    found = RELEASE_LINE.findall(CHANGELOG.read_text())
    assert found, "CHANGELOG.md names no release with its commit"
    return sorted(found, key=lambda release: tuple(int(part) for part in release[0].split(".")))


@pytest.fixture(scope="module")
def release_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A template repository with every release tagged and, tagged newer, the working tree."""
    repo = tmp_path_factory.mktemp("releases")
    git(repo, "init", "--quiet", "--initial-branch=main")
    for version, commit in releases():
        if (repo / ".git" / "index").exists():
            git(repo, "rm", "-r", "--quiet", ".")
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(repo)], input=archive, check=True)
        git(repo, "add", "--all")
        git(repo, "commit", "--quiet", "--allow-empty", "--message", f"release {version}")
        git(repo, "tag", f"v{version}")
    git(repo, "rm", "-r", "--quiet", ".")
    copy_working_tree(repo)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--allow-empty", "--message", "working tree")
    git(repo, "tag", TEMPLATE_TAG)
    return repo


def generate_service(repo: Path, destination: Path, answers: dict[str, str], vcs_ref: str) -> Path:
    copier.run_copy(
        str(repo),
        destination,
        data=answers,
        defaults=True,
        unsafe=True,
        quiet=True,
        vcs_ref=vcs_ref,
    )
    git(destination, "init", "--quiet", "--initial-branch=main")
    commit_all(destination, "generated")
    return destination


def commit_all(project: Path, message: str) -> None:
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--allow-empty", "--message", message)


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


def update(project: Path, vcs_ref: str = TEMPLATE_TAG, **answers: str) -> None:
    copier.run_update(
        project,
        data=answers,
        defaults=True,
        overwrite=True,
        unsafe=True,
        quiet=True,
        vcs_ref=vcs_ref,
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
    # uv.lock: resolved by a task at copy and update time (checked with `uv lock --check`).
    # The rest: what the service's checks leave behind, all of it git-ignored.
    ignored = {".git", ".env", "uv.lock", "__pycache__", ".mypy_cache", ".ruff_cache"}
    ignored |= {".import_linter_cache", ".hypothesis", ".schemathesis", ".pytest_cache"}
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


def assert_lock_matches(project: Path) -> None:
    """uv.lock exists and is what `uv lock` makes of the current pyproject.toml."""
    assert (project / "uv.lock").is_file(), "the lock task wrote no uv.lock"
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH (scripts/test puts it there)"
    run_in_service(project, [uv, "lock", "--check"], variant="updated", step="uv lock --check")


def service_checks(
    project: Path,
    variant: str,
    mypy_cache_dir: Path,
    tests: list[str],
    runs: list[SuiteRun],
    *,
    on_this_python: bool = True,
) -> None:
    """The service's lint, format, import contracts, types and (a part of) its suite. A
    service for another Python than this one gets ruff only here: the import contracts,
    mypy and pytest parse its code with this interpreter, which cannot read newer syntax
    (PEP 695); tests/test_python_versions.py runs them on that Python."""
    steps = {
        "ruff check": [tool("ruff"), "check", "."],
        "ruff format --check": [tool("ruff"), "format", "--check", "."],
        "lint-imports": [tool("lint-imports")],
        "mypy": [tool("mypy"), "--cache-dir", str(mypy_cache_dir)],
        "pytest": [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
    }
    if not on_this_python:
        steps = {step: steps[step] for step in ("ruff check", "ruff format --check")}
    for step, command in steps.items():
        run_in_service(
            project,
            command,
            variant=variant,
            step=step,
            env={"TEST_DATABASE_URL": None, "TEST_REDIS_URL": None},
            runs=runs,
        )


def locked_versions(project: Path) -> dict[str, str]:
    lock = tomllib.loads((project / "uv.lock").read_text())
    return {package["name"]: package["version"] for package in lock["package"]}


def lock_the_team_way(project: Path) -> None:
    """The lock a team of a release without a lock task has: `make install` (`uv sync`)
    wrote uv.lock, committed, with one package held at an older version."""
    if not (project / "uv.lock").exists():
        locked = uv_in(project, "lock")
        assert locked.returncode == 0, locked.stderr
    name, version = TEAM_PIN
    held = uv_in(project, "lock", "--upgrade-package", f"{name}=={version}")
    assert held.returncode == 0, held.stderr
    assert locked_versions(project)[name] == version
    commit_all(project, "team lock")


def test_update_through_every_release_keeps_user_edits(
    release_repo: Path, tmp_path: Path, mypy_cache_dir: Path, record_suite_run: list[SuiteRun]
) -> None:
    """Generated from the first release, edited and locked, then updated release by release
    to this tree, as docs/updating.md says: after each update the merge is clean, the edits
    are kept, the project is that release's fresh render plus the edits, the `_tasks` and
    `_migrations` did their part (.env keeps every value and gains what the release needs;
    uv.lock is re-resolved for the merged pyproject.toml and keeps the team's pin), and the
    service's lint, formatting, import contracts and types pass with the tests that update
    added or changed. The end state equals a fresh render of this tree plus the edits, whose
    whole suite tests/test_variants.py runs; the update to the first later release runs
    nearly all of it here."""
    (first, _), *later = releases()
    project = generate_service(release_repo, tmp_path / "service", {}, f"v{first}")
    apply_user_edits(project)
    lock_the_team_way(project)
    name, pinned = TEAM_PIN
    left_behind: list[str] = []  # what the checks wrote that the release did not ignore

    for version in [f"v{version}" for version, _ in later] + [TEMPLATE_TAG]:
        env_before = dotenv_values(project / ".env")
        update(project, vcs_ref=version)

        assert_clean_merge(project)
        assert (project / USER_ROUTE).read_text() == USER_ROUTE_TEXT, version
        assert "Field(default=15," in (project / "app/core/config.py").read_text(), version
        assert (project / "README.md").read_text().endswith(README_NOTE), version
        assert f"_commit: {version}" in (project / ".copier-answers.yml").read_text()
        fresh = render(
            release_repo, tmp_path / f"fresh-{version}", vcs_ref=version, skip_tasks=True
        )
        assert differing_files(project, fresh) == {USER_ROUTE, "app/core/config.py", "README.md"}
        # _tasks: .env is never rendered again; the task adds the Compose password once.
        env_after = dotenv_values(project / ".env")
        assert {key: env_after.get(key) for key in env_before} == env_before, version
        assert env_after.get("POSTGRES_PASSWORD"), version
        # _migrations: after the merge, uv.lock is re-resolved, never merged or replaced.
        assert_lock_matches(project)
        assert locked_versions(project)[name] == pinned, f"{version} moved the team's {name}"

        tests = changed_tests(project)
        commit_all(project, f"update to {version}")
        service_checks(project, f"updated to {version}", mypy_cache_dir, tests, record_suite_run)
        status = git(project, "status", "--porcelain", "--untracked-files=all")
        if version != TEMPLATE_TAG:
            # 0.2.0's .gitignore missed the fuzz run's .hypothesis/ and .schemathesis/: a team
            # on it deletes them before updating.
            left_behind += [line[3:] for line in status.splitlines()]
            git(project, "clean", "-fdq")
            continue
        # Copier refuses to update a dirty tree: what the checks write, here and at the
        # releases before (whose suites ran nearly whole), must be git-ignored.
        assert status == "", f"the checks left files that git does not ignore:\n{status}"
        ignored = subprocess.run(
            ["git", "check-ignore", "--stdin"],
            input="\n".join(left_behind),
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.splitlines()
        assert sorted(set(left_behind) - set(ignored)) == []


def test_update_stops_before_replacing_an_answer_a_release_accepted(
    release_repo: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """0.1.0 accepted these; this release refuses them, and Copier with --defaults used
    to replace each by its default without a word (slug "rich" -> "rich-service", a
    renamed distribution). The update stops before changing a file, names each answer,
    and goes through with the values given by `--data`."""
    first = f"v{releases()[0][0]}"
    accepted = {
        "project_name": "Budget $aver",
        "project_slug": "rich",
        "project_description": "A long one. " * 27,
    }
    project = generate_service(release_repo, tmp_path / "service", accepted, first)
    stored = (project / ".copier-answers.yml").read_text()

    with pytest.raises(copier.errors.TaskError):
        update(project)

    err = capfd.readouterr().err
    for name in accepted:
        assert f"  {name}: " in err, err
    assert "copier update --data 'project_name=NEW VALUE'" in err
    assert (project / ".copier-answers.yml").read_text() == stored
    assert git(project, "status", "--porcelain") == ""

    update(
        project,
        project_name="Budget Saver",
        project_slug="rich-service",
        project_description="Budgets.",
    )
    answers = (project / ".copier-answers.yml").read_text()
    assert "project_slug: rich-service\n" in answers
    assert "project_name: Budget Saver\n" in answers


def answer_changes() -> list[Any]:
    """(question, old answer, new answer): each question's default to each other choice,
    and the change the issue reported (Kubernetes only -> Compose)."""
    cases = [
        pytest.param(name, spec["default"], value, id=f"{name}={spec['default']}->{value}")
        for name, spec in questions().items()
        for value in choice_values(spec)
        if spec.get("choices") and value != spec["default"]
    ]
    cases.append(
        pytest.param("deployment", "kubernetes", "compose", id="deployment=kubernetes->compose")
    )
    return cases


@pytest.mark.parametrize(("question", "old", "new"), answer_changes())
def test_update_can_change_an_answer(
    template_repo: Path,
    tmp_path: Path,
    mypy_cache_dir: Path,
    record_suite_run: list[SuiteRun],
    question: str,
    old: str,
    new: str,
) -> None:
    """Each answer change on update gives the fresh render of the new answer, a .env
    that has what the new files need, and a service whose checks pass."""
    project = generate_service(template_repo, tmp_path / "service", {question: old}, TEMPLATE_TAG)
    env_before = dotenv_values(project / ".env")

    update(project, **{question: new})

    assert_clean_merge(project)
    assert f"{question}: {quoted(new)}" in (project / ".copier-answers.yml").read_text()
    fresh = render(template_repo, tmp_path / "fresh", {question: new}, vcs_ref=TEMPLATE_TAG)
    assert differing_files(project, fresh) == set()
    env_after = dotenv_values(project / ".env")
    # Nothing the user had in .env changes; what the new answer needs is added.
    assert {key: env_after.get(key) for key in env_before} == env_before
    assert set(env_after) >= set(dotenv_values(fresh / ".env"))
    if (project / "docker-compose.yml").exists() and shutil.which("docker"):
        subprocess.run(
            ["docker", "compose", "config", "--quiet"], cwd=project, check=True, timeout=60
        )
    on_this_python = question != "python_version" or new == HOST_PYTHON
    # A lock for another Python needs that interpreter (uv resolves with it): where this
    # machine has none (3.14 lives only in a chroot), the lock cannot be checked here.
    if on_this_python or shutil.which(f"python{new}"):
        assert_lock_matches(project)
    service_checks(
        project,
        f"{question}={new}",
        mypy_cache_dir,
        changed_tests(project),
        record_suite_run,
        on_this_python=on_this_python,
    )


def changed_tests(project: Path) -> list[str]:
    """The generated test files the update added or changed, and the health checks: the
    quick part of the suite that covers what the changed answer changed."""
    status = git(project, "status", "--porcelain", "--untracked-files=all", "tests")
    changed = {
        line[3:]
        for line in status.splitlines()
        if line[:2].strip() in {"M", "A", "??", "AM", "MM"} and "/test_" in line
    }
    return [*sorted({*changed, "tests/e2e/test_health.py"}), "-x"]


def quoted(value: str) -> str:
    """How the answers file writes a value ("3.12" is quoted: it would read as a number)."""
    return f"'{value}'" if re.fullmatch(r"[\d.]+", value) else value


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


def uv_in(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH (scripts/test puts it there)"
    environment = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    return subprocess.run(
        [uv, *args], cwd=project, env={**environment, **env}, capture_output=True, text=True
    )


def test_update_relocks_after_merging_a_dependency_the_user_added(
    template_repo: Path, tmp_path: Path
) -> None:
    """uv.lock is regenerated after Copier merges the user's pyproject.toml, never
    three-way-merged (that left `UU uv.lock` with conflict markers)."""
    project = generate_service(template_repo, tmp_path / "service", {}, TEMPLATE_TAG)
    added = uv_in(project, "add", "--no-sync", "tenacity>=8")
    assert added.returncode == 0, added.stderr
    commit_all(project, "add tenacity")

    update(project, storage_backend="s3", token_transport="cookie")

    assert_clean_merge(project)
    assert "tenacity>=8" in (project / "pyproject.toml").read_text()
    lock = (project / "uv.lock").read_text()
    assert 'name = "tenacity"' in lock
    assert 'name = "boto3"' in lock
    assert_lock_matches(project)


def test_an_offline_update_stands_and_keeps_the_users_lock(
    template_repo: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """No package index (offline): like a machine without uv, the update stands, the
    committed uv.lock is left byte for byte and the message says to run `uv lock`."""
    project = generate_service(template_repo, tmp_path / "service", {}, TEMPLATE_TAG)
    committed = (project / "uv.lock").read_bytes()
    # Nothing listens on port 9 (discard): every index request is refused at once.
    # Copier runs tasks with plumbum's environment, not os.environ.
    with local.env(UV_DEFAULT_INDEX="http://127.0.0.1:9/simple", UV_NO_CACHE="1"):
        update(project, storage_backend="s3")

    assert (project / "uv.lock").read_bytes() == committed
    assert "storage_backend: s3" in (project / ".copier-answers.yml").read_text()
    assert "once online, run `uv lock`" in capfd.readouterr().err


LOCK_TASK = Path(__file__).parent.parent / "tasks/lock.py"


def run_lock_task(project: Path, operation: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    return subprocess.run(
        [sys.executable, str(LOCK_TASK), operation],
        cwd=project,
        env={**environment, **env},
        capture_output=True,
        text=True,
    )


def test_the_lock_task_stands_offline_and_says_what_to_run(tmp_path: Path) -> None:
    """A copy without network is not deleted by Copier: the task exits 0 without a lock."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "svc"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["httpx>=0.27"]\n'
    )
    result = run_lock_task(
        tmp_path, "copy", UV_DEFAULT_INDEX="http://127.0.0.1:9/simple", UV_NO_CACHE="1"
    )

    assert result.returncode == 0, result.stderr
    assert "no uv.lock was written: once online, run `uv lock`" in result.stderr
    assert not (tmp_path / "uv.lock").exists()


def test_the_lock_task_waits_for_conflicts_in_pyproject_to_be_resolved(tmp_path: Path) -> None:
    """Conflict markers from the update's merge: not uv's "TOML parse error", but what to
    do, and the update stands with the previous lock."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "svc"\n<<<<<<< before updating\nversion = "0.1.0"\n=======\n'
        'version = "0.2.0"\n>>>>>>> after updating\n'
    )
    (tmp_path / "uv.lock").write_text("version = 1\n")

    result = run_lock_task(tmp_path, "update")

    assert result.returncode == 0, result.stderr
    assert "resolve the conflicts in pyproject.toml, then run `uv lock`" in result.stderr
    assert "TOML parse error" not in result.stderr
    assert (tmp_path / "uv.lock").read_text() == "version = 1\n"
