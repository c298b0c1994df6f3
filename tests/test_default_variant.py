"""The default variant: rendered clean, and its own checks and suite pass on every backend."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests import matrix
from tests.conftest import service_backends
from tests.rendering import SuiteRun, render, run_in_service, tool, variant_name

VARIANT = "default:" + variant_name(matrix.defaults())

LAYERED_TREE = [
    "app/main.py",
    "app/core/config.py",
    "app/core/database.py",
    "app/core/security.py",
    "app/core/logging.py",
    "app/core/cache.py",
    "app/models/base.py",
    "app/models/user.py",
    "app/models/article.py",
    "app/schemas/article.py",
    "app/schemas/pagination.py",
    "app/services/crud_service.py",
    "app/services/user_service.py",
    "app/services/article_service.py",
    "app/routes/auth.py",
    "app/routes/users.py",
    "app/routes/articles.py",
    "app/routes/health.py",
    "app/exceptions/__init__.py",
    "app/exceptions/handlers.py",
    "alembic/env.py",
    "alembic.ini",
    "tests/conftest.py",
    "Makefile",
    "README.md",
    ".env",
    ".env.example",
    ".gitignore",
    ".copier-answers.yml",
    "pyproject.toml",
]


@pytest.fixture(scope="module")
def service(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(template_repo, tmp_path_factory.mktemp("default") / "service")


def test_layered_tree_is_rendered(service: Path) -> None:
    missing = [name for name in LAYERED_TREE if not (service / name).is_file()]
    assert missing == [], f"[{VARIANT}] missing files"
    leftovers = [str(path) for path in service.rglob("*.jinja")]
    assert leftovers == [], f"[{VARIANT}] unrendered template files"


def test_rendered_text_has_no_jinja_leftovers(service: Path) -> None:
    for path in service.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".toml", ".md", ".ini", ".yml", ".example"}:
            text = path.read_text()
            assert "{{" not in text and "{%" not in text, f"[{VARIANT}] Jinja left in {path}"
            assert "\n\n\n\n" not in text, f"[{VARIANT}] blank-line run left by Jinja in {path}"
            if text:
                assert text.endswith("\n"), f"[{VARIANT}] {path} lacks a final newline"
                assert not text.endswith("\n\n"), f"[{VARIANT}] {path} ends in blank lines"


def test_ruff_lint(service: Path, record_suite_run: list[SuiteRun]) -> None:
    run_in_service(
        service, [tool("ruff"), "check", "."], variant=VARIANT, step="ruff check", runs=record_suite_run
    )


def test_ruff_format_changes_nothing(service: Path, record_suite_run: list[SuiteRun]) -> None:
    run_in_service(
        service,
        [tool("ruff"), "format", "--check", "--diff", "."],
        variant=VARIANT,
        step="ruff format --check",
        runs=record_suite_run,
    )


def test_import_layers_contract(service: Path, record_suite_run: list[SuiteRun]) -> None:
    run_in_service(
        service, [tool("lint-imports")], variant=VARIANT, step="lint-imports", runs=record_suite_run
    )


def test_mypy_strict(service: Path, mypy_cache_dir: Path, record_suite_run: list[SuiteRun]) -> None:
    run_in_service(
        service,
        [tool("mypy"), "--cache-dir", str(mypy_cache_dir)],
        variant=VARIANT,
        step="mypy",
        runs=record_suite_run,
    )


@pytest.mark.parametrize("backend", service_backends())
def test_generated_suite(service: Path, backend: str, record_suite_run: list[SuiteRun]) -> None:
    env: dict[str, str | None] = {"TEST_DATABASE_URL": None, "TEST_REDIS_URL": None}
    label = "sqlite+memory"
    if backend == "postgres":
        env = {
            "TEST_DATABASE_URL": os.environ["TEST_DATABASE_URL"],
            "TEST_REDIS_URL": os.environ["TEST_REDIS_URL"],
        }
        label = "postgresql+redis"
    result = run_in_service(
        service,
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        variant=VARIANT,
        step=f"pytest ({label})",
        env=env,
        backend=label,
        runs=record_suite_run,
    )
    assert " passed" in result.stdout
    expected_header = "database=postgresql cache=redis" if backend == "postgres" else "database=sqlite cache=memory"
    assert expected_header in result.stdout, f"[{VARIANT}] suite did not run on {label}"
