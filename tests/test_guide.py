"""The guide "Add a resource" (docs/guides/add-a-resource.md), followed literally.

The page shows its code by including files from docs/guides/add-a-resource/. This test
reads the page's include lines, in order, and applies each to a freshly rendered
default service as the page tells a reader to:

- `changes/*.diff`: a patch to an existing file, applied with `git apply`;
- `output/*`: what a command prints, compared with what it printed here;
- anything else: a new file of the service, at the same relative path. The migration is
  first drafted with the page's own autogenerate command, which must write that file
  with the same columns, and then replaced by the tidied version the page shows.

A database that was at the previous head is migrated and seeded as a deploy would do;
then the service's ruff, ruff format, mypy, import contracts and suite run, the guide's
tests included. One render, one suite run: on PostgreSQL + Redis when TEST_DATABASE_URL
and TEST_REDIS_URL are set, else on SQLite.

To change the guide: edit a rendered service, copy the new files back and refresh the
patches with `git diff` there (the page shows them as they are).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, service_backends
from tests.rendering import SuiteRun, render, run_in_service, tool

PAGE = REPO_ROOT / "docs/guides/add-a-resource.md"
SNIPPETS = REPO_ROOT / "docs/guides/add-a-resource"
INCLUDE = re.compile(r'^--8<-- "guides/add-a-resource/(?P<path>[^"]+)"$', re.MULTILINE)
VARIANT = "guide:add-a-resource"
GUIDE_TESTS = "tests/e2e/test_comments.py"


def included_snippets() -> list[str]:
    """The files the page includes, relative to SNIPPETS, in the page's order."""
    return INCLUDE.findall(PAGE.read_text())


def test_the_page_includes_every_snippet_once() -> None:
    included = included_snippets()
    on_disk = sorted(
        path.relative_to(SNIPPETS).as_posix()
        for path in SNIPPETS.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )

    assert len(included) == len(set(included)), "a snippet is included twice"
    assert sorted(included) == on_disk, "snippet files and the page's includes differ"


def autogenerate_command() -> list[str]:
    """The page's `uv run alembic revision --autogenerate ...`, as arguments to `python -m`."""
    found = re.findall(r"^uv run (alembic revision --autogenerate .*)$", PAGE.read_text(), re.M)
    assert len(found) == 1, "the page shows no (or several) autogenerate commands"
    return shlex.split(found[0])


def _columns(migration: Path) -> list[str]:
    return sorted(
        line.strip() for line in migration.read_text().splitlines() if "sa.Column(" in line
    )


@pytest.mark.slow
def test_following_the_guide_gives_a_service_that_passes_its_checks(
    template_repo: Path,
    tmp_path: Path,
    mypy_cache_dir: Path,
    record_suite_run: list[SuiteRun],
) -> None:
    service = render(template_repo, tmp_path / "svc")
    runs = record_suite_run
    # The development database of a service deployed before the guide: at the old head,
    # seeded. The guide's migration and seed must bring it up to date.
    database = tmp_path / "dev.db"
    dev_env: dict[str, str | None] = {"DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
    python = sys.executable

    def run(
        command: list[str], step: str, env: dict[str, str | None] | None = None, backend: str = ""
    ) -> subprocess.CompletedProcess[str]:
        return run_in_service(
            service, command, variant=VARIANT, step=step, env=env, backend=backend, runs=runs
        )

    run([python, "-m", "alembic", "upgrade", "head"], "alembic upgrade (before)", dev_env)
    run([python, "-m", "app.cli", "seed"], "seed (before)", dev_env)

    outputs = []
    for snippet in included_snippets():
        source = SNIPPETS / snippet
        if snippet.startswith("changes/"):
            run(["git", "apply", "--verbose", str(source)], f"git apply {source.name}")
        elif snippet.startswith("output/"):
            outputs.append(snippet)
        else:
            target = service / snippet
            if snippet.startswith("alembic/versions/"):
                # The draft first, with the page's own command; then the tidied file.
                run([python, "-m", *autogenerate_command()], "alembic autogenerate", dev_env)
                assert target.is_file(), f"the documented command did not write {snippet}"
                assert _columns(target) == _columns(source), "tidying changed the columns"
            else:
                assert not target.exists(), f"{snippet}: the guide shows it as a new file"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)

    # Deploying the change: migrate, then seed (what `make migrate` runs).
    run([python, "-m", "alembic", "upgrade", "head"], "alembic upgrade (guide)", dev_env)
    with sqlite3.connect(database) as connection:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
    assert "comments" in tables
    seeded = run([python, "-m", "app.cli", "seed"], "seed (guide)", dev_env)
    assert outputs == ["output/seed.txt"]
    assert seeded.stdout.strip() == (SNIPPETS / "output/seed.txt").read_text().strip()
    run([python, "-m", "alembic", "check"], "alembic check", dev_env)

    run([tool("ruff"), "check", "."], "ruff check")
    run([tool("ruff"), "format", "--check", "--diff", "."], "ruff format --check")
    run([tool("mypy"), "--cache-dir", str(mypy_cache_dir)], "mypy")
    run([tool("lint-imports")], "lint-imports")

    env: dict[str, str | None] = {"TEST_DATABASE_URL": None, "TEST_REDIS_URL": None}
    label = "sqlite+memory"
    if "postgres" in service_backends():
        env = {
            "TEST_DATABASE_URL": os.environ["TEST_DATABASE_URL"],
            "TEST_REDIS_URL": os.environ["TEST_REDIS_URL"],
        }
        label = "postgresql+redis"
    command = [python, "-m", "pytest", "-p", "no:cacheprovider", "-rfEs", "-v"]
    suite = run(command, f"pytest ({label})", env, backend=label).stdout
    written = re.findall(r"^async def (test_\w+)", (SNIPPETS / GUIDE_TESTS).read_text(), re.M)
    passed = re.findall(rf"^{re.escape(GUIDE_TESTS)}::(\w+) PASSED", suite, re.M)
    assert written, "the guide shows no tests"
    assert sorted(passed) == sorted(written), "the guide's tests did not all pass"
    # The suite's migration tests read every model, the guide's table included.
    for check in ("test_models_match_migrations", "test_upgrade_creates_every_model_table"):
        assert re.search(rf"::{check} PASSED", suite), check
    if label == "postgresql+redis":
        assert "SKIPPED" not in suite, "tests skipped on real services"
