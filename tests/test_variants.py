"""Every variant of the matrix (derived from copier.yml): rendered clean, its own checks
and suite pass. Failures name the variant and show the generated project's output.

Tiers, by cost:
- every variant (the full product of the answers) is rendered, its tree and files
  checked, and its Python linted, format-checked, import-checked and type-checked.
  Variants whose Python sources and pyproject.toml are byte-identical (answers such as
  `deployment` change only non-Python files) share one run of each of those checks:
  same inputs, same verdict.
- the generated test suites run on an all-pairs selection of the matrix
  (`matrix.pairwise_variants()`: every pair of answers of any two questions at least
  once, the default variant first). With TEST_DATABASE_URL and TEST_REDIS_URL set they
  run on PostgreSQL + Redis, and the default variant's also on SQLite + the in-process
  cache; without them, on SQLite + the in-process cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import matrix
from tests.conftest import service_backends
from tests.rendering import SuiteRun, render, run_in_service, tool, variant_name

LAYERED_TREE = [
    "app/main.py",
    "app/core/config.py",
    "app/core/database.py",
    "app/core/security.py",
    "app/core/logging.py",
    "app/core/cache.py",
    "app/core/rate_limit.py",
    "app/models/base.py",
    "app/models/user.py",
    "app/models/article.py",
    "app/models/auth_session.py",
    "app/schemas/article.py",
    "app/schemas/pagination.py",
    "app/services/crud_service.py",
    "app/services/user_service.py",
    "app/services/article_service.py",
    "app/services/auth_service.py",
    "app/routes/auth.py",
    "app/routes/users.py",
    "app/routes/articles.py",
    "app/routes/health.py",
    "app/routes/token_transport.py",
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
    "Dockerfile",
    ".dockerignore",
]

# What each answer must bring into the tree, and what it must leave out (path -> text).
MUST_CONTAIN: dict[tuple[str, str], dict[str, list[str]]] = {
    ("token_transport", "cookie"): {
        "app/routes/token_transport.py": [
            "verify_csrf",
            "httponly=True",
            "APIKeyCookie",
        ],
        "tests/e2e/test_cookie_transport.py": ["cross_site"],
    },
    ("token_transport", "body"): {
        "app/routes/token_transport.py": ["HTTPBearer"],
        "tests/e2e/test_body_transport.py": ["Bearer"],
    },
}
MUST_NOT_CONTAIN: dict[tuple[str, str], dict[str, list[str]]] = {
    ("token_transport", "cookie"): {"app": ["HTTPBearer", "Authorization"]},
    ("token_transport", "body"): {"app": ["set_cookie", "csrf", "CSRF"]},
}
MUST_NOT_EXIST: dict[tuple[str, str], list[str]] = {
    ("token_transport", "cookie"): ["tests/e2e/test_body_transport.py"],
    ("token_transport", "body"): ["tests/e2e/test_cookie_transport.py"],
    ("deployment", "compose"): ["deploy/kubernetes"],
    ("deployment", "kubernetes"): ["docker-compose.yml", "deploy/nginx"],
}


@dataclass(frozen=True)
class Variant:
    answers: dict[str, Any]
    path: Path

    @property
    def name(self) -> str:
        name = variant_name(self.answers)
        return f"default:{name}" if self.is_default else name

    @property
    def is_default(self) -> bool:
        return self.answers == matrix.defaults()


@pytest.fixture(scope="module", params=matrix.all_variants(), ids=variant_name)
def variant(
    request: pytest.FixtureRequest,
    template_repo: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Variant:
    answers: dict[str, Any] = request.param
    path = render(template_repo, tmp_path_factory.mktemp(variant_name(answers)) / "svc", answers)
    return Variant(answers, path)


def _texts(root: Path) -> dict[Path, str]:
    return {path: path.read_text() for path in root.rglob("*.py")}


def test_layered_tree_is_rendered(variant: Variant) -> None:
    missing = [name for name in LAYERED_TREE if not (variant.path / name).is_file()]
    assert missing == [], f"[{variant.name}] missing files"
    leftovers = [str(path) for path in variant.path.rglob("*.jinja")]
    assert leftovers == [], f"[{variant.name}] unrendered template files"


def test_answers_shape_the_tree(variant: Variant) -> None:
    for question, value in variant.answers.items():
        key = (question, value)
        for relative, needles in MUST_CONTAIN.get(key, {}).items():
            text = (variant.path / relative).read_text()
            for needle in needles:
                assert needle in text, f"[{variant.name}] {relative} lacks {needle!r}"
        for relative, needles in MUST_NOT_CONTAIN.get(key, {}).items():
            for path, text in _texts(variant.path / relative).items():
                for needle in needles:
                    assert needle not in text, f"[{variant.name}] {path} has {needle!r}"
        for relative in MUST_NOT_EXIST.get(key, []):
            assert not (variant.path / relative).exists(), f"[{variant.name}] has {relative}"


def test_rendered_text_has_no_jinja_leftovers(variant: Variant) -> None:
    for path in variant.path.rglob("*"):
        if path.is_file() and (
            path.suffix in {".py", ".toml", ".md", ".ini", ".yml", ".yaml", ".conf", ".example"}
            or path.name in {"Dockerfile", ".dockerignore", "Makefile", ".env"}
        ):
            text = path.read_text()
            where = f"[{variant.name}] {path.relative_to(variant.path)}"
            assert "{{" not in text, f"{where}: Jinja left behind"
            assert "{%" not in text, f"{where}: Jinja left behind"
            assert "\n\n\n\n" not in text, f"{where}: blank-line run left by Jinja"
            if text:
                assert text.endswith("\n"), f"{where}: no final newline"
                assert not text.endswith("\n\n"), f"{where}: ends in blank lines"


def test_env_example_documents_every_setting(variant: Variant) -> None:
    documented = set(re.findall(r"^([A-Z_]+)=", (variant.path / ".env.example").read_text(), re.M))
    config = (variant.path / "app/core/config.py").read_text()
    fields = {name.upper() for name in re.findall(r"^    ([a-z_]+): ", config, re.MULTILINE)}
    assert fields, f"[{variant.name}] no settings found in app/core/config.py"
    assert fields - documented == set(), f"[{variant.name}] settings missing from .env.example"
    assert documented - fields == set(), f"[{variant.name}] .env.example has unknown settings"


def _make_targets(makefile: str) -> dict[str, list[str]]:
    """target -> its prerequisites, from `name: prereqs  ## help` lines."""
    targets = {}
    for match in re.finditer(r"^([a-z-]+):([^#\n]*)", makefile, re.MULTILINE):
        targets[match.group(1)] = match.group(2).split()
    return targets


def test_ci_workflow_runs_what_make_check_runs(variant: Variant) -> None:
    workflow = yaml.safe_load((variant.path / ".github/workflows/ci.yml").read_text())
    steps = workflow["jobs"]["check"]["steps"]
    ran = [step["run"].removeprefix("make ").strip() for step in steps if "run" in step]
    targets = _make_targets((variant.path / "Makefile").read_text())
    assert all(target in targets for target in ran), f"[{variant.name}] CI runs unknown targets"
    assert set(targets["check"]) <= set(ran), f"[{variant.name}] CI skips part of make check"
    assert "migration-check" in ran, f"[{variant.name}] CI does not check migrations"
    services = workflow["jobs"]["check"]["services"]
    assert {"postgres", "redis"} <= set(services), f"[{variant.name}] CI lacks service containers"
    env = workflow["jobs"]["check"]["env"]
    assert env["TEST_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert env["TEST_REDIS_URL"].startswith("redis://")


# Checks of the Python sources, run once per distinct set of sources:
# (step, fingerprint) -> (the variant that ran it, its failure or None).
_python_checks: dict[tuple[str, str], tuple[str, str | None]] = {}


def python_fingerprint(project: Path) -> str:
    """A digest of what the Python checks read: every .py file and pyproject.toml."""
    digest = hashlib.sha256()
    for path in sorted([*project.rglob("*.py"), project / "pyproject.toml"]):
        digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def check_python_once(
    variant: Variant, step: str, command: list[str], runs: list[SuiteRun]
) -> None:
    key = (step, python_fingerprint(variant.path))
    if key in _python_checks:
        first, failure = _python_checks[key]
        assert failure is None, f"[{variant.name}] same Python sources as {first}:\n{failure}"
        return
    try:
        run_in_service(variant.path, command, variant=variant.name, step=step, runs=runs)
    except AssertionError as error:
        _python_checks[key] = (variant.name, str(error))
        raise
    _python_checks[key] = (variant.name, None)


def test_ruff_lint(variant: Variant, record_suite_run: list[SuiteRun]) -> None:
    check_python_once(variant, "ruff check", [tool("ruff"), "check", "."], record_suite_run)


def test_ruff_format_changes_nothing(variant: Variant, record_suite_run: list[SuiteRun]) -> None:
    command = [tool("ruff"), "format", "--check", "--diff", "."]
    check_python_once(variant, "ruff format --check", command, record_suite_run)


def test_import_layers_contract(variant: Variant, record_suite_run: list[SuiteRun]) -> None:
    check_python_once(variant, "lint-imports", [tool("lint-imports")], record_suite_run)


def test_mypy_strict(
    variant: Variant, mypy_cache_dir: Path, record_suite_run: list[SuiteRun]
) -> None:
    command = [tool("mypy"), "--cache-dir", str(mypy_cache_dir)]
    check_python_once(variant, "mypy", command, record_suite_run)


def suite_cases() -> list[Any]:
    """(variant, backend) pairs over the all-pairs selection: real services for each when
    configured, else SQLite for each; the default variant always runs on SQLite too."""
    backends = service_backends()
    cases = []
    for answers in matrix.pairwise_variants():
        for backend in backends:
            if backend == "sqlite" and "postgres" in backends and answers != matrix.defaults():
                continue
            cases.append(pytest.param(answers, backend, id=f"{variant_name(answers)}-{backend}"))
    return cases


@pytest.mark.parametrize(("variant", "backend"), suite_cases(), indirect=["variant"])
def test_generated_suite(variant: Variant, backend: str, record_suite_run: list[SuiteRun]) -> None:
    env: dict[str, str | None] = {"TEST_DATABASE_URL": None, "TEST_REDIS_URL": None}
    label, header = "sqlite+memory", "backends: database=sqlite cache=memory"
    if backend == "postgres":
        env = {
            "TEST_DATABASE_URL": os.environ["TEST_DATABASE_URL"],
            "TEST_REDIS_URL": os.environ["TEST_REDIS_URL"],
        }
        label, header = "postgresql+redis", "backends: database=postgresql cache=redis"
    result = run_in_service(
        variant.path,
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs"],
        variant=variant.name,
        step=f"pytest ({label})",
        env=env,
        backend=label,
        runs=record_suite_run,
    )
    assert header in result.stdout, f"[{variant.name}] suite did not run on {label}"
    assert " passed" in result.stdout
    if backend == "postgres":
        assert "skipped" not in result.stdout, f"[{variant.name}] tests skipped on real services"
