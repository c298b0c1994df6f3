"""Every variant of the matrix (derived from copier.yml): rendered clean, its own checks
and suite pass. Failures name the variant and show the generated project's output.

Every combination is rendered and checked (tree, answer-specific files and words, leftover
Jinja, settings, dependencies); ruff, ruff format, mypy and import-linter run once per
distinct set of Python sources. The generated suites run on an all-pairs selection of the
matrix: with TEST_DATABASE_URL and TEST_REDIS_URL set on PostgreSQL + Redis (the default
variant also on SQLite + the in-process cache), otherwise on SQLite.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from tests import matrix
from tests.conftest import service_backends
from tests.rendering import READ_REPLICA_TESTS, SuiteRun, run_in_service, tool, variant_name

LAYERED_TREE = [
    "app/main.py",
    "app/core/config.py",
    "app/core/database.py",
    "app/core/security.py",
    "app/core/logging.py",
    "app/core/cache.py",
    "app/core/rate_limit.py",
    "app/core/rbac.py",
    "app/models/base.py",
    "app/models/user.py",
    "app/models/article.py",
    "app/models/auth_session.py",
    "app/models/rbac.py",
    "app/schemas/article.py",
    "app/schemas/listing.py",
    "app/services/listing.py",
    "app/core/read_cache.py",
    "app/routes/responses.py",
    "app/services/crud_service.py",
    "app/services/user_service.py",
    "app/services/article_service.py",
    "app/services/auth_service.py",
    "app/services/authorization.py",
    "app/services/role_service.py",
    "app/services/rbac_seed.py",
    "app/routes/auth.py",
    "app/routes/users.py",
    "app/routes/articles.py",
    "app/routes/health.py",
    "app/routes/token_transport.py",
    "app/routes/permissions.py",
    "app/routes/rbac.py",
    "app/cli.py",
    "alembic/versions/0004_rbac.py",
    "alembic/versions/0005_list_indexes.py",
    "alembic/versions/0006_moderate_action.py",
    "app/exceptions/__init__.py",
    "app/exceptions/handlers.py",
    "app/storage/base.py",
    "app/storage/factory.py",
    "app/storage/disposition.py",
    "app/email/base.py",
    "app/email/factory.py",
    "app/email/rendering.py",
    "app/email/templates/welcome.html",
    "app/email/templates/welcome.txt",
    "app/email/templates/verify_email.html",
    "app/email/templates/verify_email.txt",
    "app/email/templates/reset_password.html",
    "app/email/templates/reset_password.txt",
    "app/models/file.py",
    "app/schemas/file.py",
    "app/services/file_service.py",
    "app/services/mail_service.py",
    "app/routes/files.py",
    "tests/e2e/test_files.py",
    "tests/e2e/test_welcome_email.py",
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

TEXT_SUFFIXES = {
    ".py",
    ".toml",
    ".md",
    ".ini",
    ".yml",
    ".yaml",
    ".conf",
    ".example",
    ".html",
    ".txt",
    ".cfg",
}
TEXT_NAMES = {"Dockerfile", ".dockerignore", "Makefile", ".env", ".env.example"}
# The service's own Jinja2 email templates: copied verbatim, so `{{` is expected there.
VERBATIM_DIRS = ("app/email/templates/",)

# Per answer: the files only that answer renders.
VARIANT_FILES: dict[str, dict[str, list[str]]] = {
    "storage_backend": {
        "local": [
            "app/storage/local.py",
            "tests/fixtures/local_storage.py",
            "tests/integration/test_local_storage.py",
            "tests/e2e/test_files_local.py",
        ],
        "s3": [
            "app/storage/s3.py",
            "tests/fixtures/s3_storage.py",
            "tests/integration/test_s3_storage.py",
            "tests/e2e/test_files_s3.py",
        ],
    },
    "email_provider": {
        "smtp": [
            "app/email/smtp.py",
            "tests/fixtures/smtp_email.py",
            "tests/integration/test_smtp_provider.py",
        ],
        "api": [
            "app/email/api.py",
            "tests/fixtures/api_email.py",
            "tests/integration/test_email_api_provider.py",
        ],
    },
    "token_transport": {
        "cookie": ["tests/e2e/test_cookie_transport.py"],
        "body": ["tests/e2e/test_body_transport.py"],
    },
}
# Per answer: words that must appear somewhere in its render, and nowhere in the others'.
VARIANT_WORDS: dict[str, dict[str, list[str]]] = {
    "storage_backend": {
        "local": ["LocalStorage", "STORAGE_LOCAL_ROOT", "storage_local_root"],
        "s3": ["boto3", "botocore", "moto", "S3Storage", "STORAGE_S3_", "storage_s3_", "presigned"],
    },
    "email_provider": {
        "smtp": ["aiosmtplib", "aiosmtpd", "SmtpEmailProvider", "SMTP_", "smtp_", "app.email.smtp"],
        "api": ["ApiEmailProvider", "EMAIL_API_", "email_api_", "sendgrid", "/v3/mail/send"],
    },
    "token_transport": {
        "cookie": ["verify_csrf", "APIKeyCookie", "X-CSRF-Token", "COOKIE_SECURE", "set_cookie"],
        "body": ["HTTPBearer", "RefreshRequest", "session_secret: str = Field"],
    },
}
# Per answer: (runtime, dev) distributions its pyproject must list, and no other variant's.
VARIANT_PACKAGES: dict[str, dict[str, tuple[set[str], set[str]]]] = {
    "storage_backend": {"local": (set(), set()), "s3": ({"boto3"}, {"boto3-stubs", "moto"})},
    "email_provider": {"smtp": ({"aiosmtplib"}, {"aiosmtpd"}), "api": ({"httpx"}, set())},
    "token_transport": {"cookie": (set(), set()), "body": (set(), set())},
    "deployment": {"compose": (set(), set()), "kubernetes": (set(), set()), "both": (set(), set())},
}
# `deployment=both` renders both sets, so these are absences rather than exclusive files.
MUST_NOT_EXIST: dict[tuple[str, str], list[str]] = {
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
    request: pytest.FixtureRequest, rendered_variant: Callable[[dict[str, Any]], Path]
) -> Variant:
    answers: dict[str, Any] = request.param
    return Variant(answers, rendered_variant(answers))


def text_files(project: Path) -> dict[str, str]:
    return {
        path.relative_to(project).as_posix(): path.read_text()
        for path in project.rglob("*")
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES)
    }


def pyproject(project: Path) -> dict[str, Any]:
    return tomllib.loads((project / "pyproject.toml").read_text())


def dependency_names(requirements: list[str]) -> set[str]:
    return {Requirement(requirement).name.lower() for requirement in requirements}


def group_requirements(config: dict[str, Any], group: str) -> list[str]:
    """A dependency group's requirements, the groups it includes expanded (PEP 735)."""
    requirements: list[str] = []
    for entry in config["dependency-groups"][group]:
        if isinstance(entry, dict):
            requirements += group_requirements(config, entry["include-group"])
        else:
            requirements.append(entry)
    return requirements


def test_layered_tree_is_rendered(variant: Variant) -> None:
    missing = [name for name in LAYERED_TREE if not (variant.path / name).is_file()]
    assert missing == [], f"[{variant.name}] missing files"
    leftovers = [str(path) for path in variant.path.rglob("*.jinja")]
    assert leftovers == [], f"[{variant.name}] unrendered template files"


def test_each_answer_renders_its_own_files_and_no_other(variant: Variant) -> None:
    for question, files_by_answer in VARIANT_FILES.items():
        for value, files in files_by_answer.items():
            for file in files:
                exists = (variant.path / file).is_file()
                expected = value == variant.answers[question]
                assert exists == expected, f"[{variant.name}] {file} present={exists}"


def test_deployment_files_follow_the_answer(variant: Variant) -> None:
    for question, value in variant.answers.items():
        for relative in MUST_NOT_EXIST.get((question, value), []):
            assert not (variant.path / relative).exists(), f"[{variant.name}] has {relative}"


def test_other_answers_leave_no_trace_in_the_text(variant: Variant) -> None:
    files = text_files(variant.path)
    for question, words_by_answer in VARIANT_WORDS.items():
        for value, words in words_by_answer.items():
            for word in words:
                found = sorted(path for path, text in files.items() if word in text)
                if value == variant.answers[question]:
                    assert found, f"[{variant.name}] {word!r} should appear somewhere"
                else:
                    assert found == [], (
                        f"[{variant.name}] {word!r} of {question}={value} in {found}"
                    )


def test_rendered_text_has_no_jinja_leftovers(variant: Variant) -> None:
    for path, text in text_files(variant.path).items():
        where = f"[{variant.name}] {path}"
        if not path.startswith(VERBATIM_DIRS):
            assert "{{" not in text, f"{where}: Jinja left behind"
            assert "{%" not in text, f"{where}: Jinja left behind"
        assert "\n\n\n\n" not in text, f"{where}: blank-line run left by Jinja"
        if text:
            assert text.endswith("\n"), f"{where}: no final newline"
            assert not text.endswith("\n\n"), f"{where}: ends in blank lines"


def test_email_templates_are_copied_verbatim(variant: Variant) -> None:
    source = Path(__file__).resolve().parent.parent / "template/app/email/templates"
    target = variant.path / "app/email/templates"
    for template in source.iterdir():
        assert (target / template.name).read_text() == template.read_text(), template.name


def test_dependencies_follow_the_answers(variant: Variant) -> None:
    config = pyproject(variant.path)
    runtime = dependency_names(config["project"]["dependencies"])
    dev = dependency_names(group_requirements(config, "dev"))
    for question, packages_by_answer in VARIANT_PACKAGES.items():
        for value, (runtime_packages, dev_packages) in packages_by_answer.items():
            chosen = value == variant.answers[question]
            for package in runtime_packages - (set() if chosen else runtime & dev):
                assert (package in runtime) == chosen, f"[{variant.name}] runtime {package}"
            for package in dev_packages:
                assert (package in dev) == chosen, f"[{variant.name}] dev {package}"
    assert runtime & dev == set(), f"[{variant.name}] listed as runtime and dev"


def _unsatisfied(requirement: Requirement, seen: set[str]) -> list[str]:
    """What of `requirement` (and its extras' requirements) the running environment lacks."""
    try:
        installed = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        return [f"{requirement} (not installed)"]
    if not requirement.specifier.contains(installed, prereleases=True):
        return [f"{requirement} (installed {installed})"]
    problems = []
    for extra in requirement.extras:
        for raw in importlib.metadata.requires(requirement.name) or []:
            needed = Requirement(raw)
            key = str(needed)
            if key in seen or needed.marker is None:
                continue
            if needed.marker.evaluate({"extra": extra}):
                seen.add(key)
                problems += _unsatisfied(needed, seen)
    return problems


def test_the_shared_environment_satisfies_the_rendered_pyproject(variant: Variant) -> None:
    config = pyproject(variant.path)
    requirements = config["project"]["dependencies"] + group_requirements(config, "dev")
    problems = [
        problem
        for requirement in requirements
        for problem in _unsatisfied(Requirement(requirement), set())
    ]
    assert problems == [], f"[{variant.name}] add these to the `service` group"


def test_env_example_documents_every_setting(variant: Variant) -> None:
    documented = set(
        re.findall(r"^([A-Z_0-9]+)=", (variant.path / ".env.example").read_text(), re.M)
    )
    config = (variant.path / "app/core/config.py").read_text()
    # The Settings class's body: up to the next top-level statement.
    settings_class = re.search(r"^class Settings\(.*?(?=^\S)", config, re.M | re.S)
    assert settings_class, f"[{variant.name}] no Settings class in app/core/config.py"
    fields = {
        name.upper() for name in re.findall(r"^    ([a-z_0-9]+): ", settings_class.group(), re.M)
    }
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


_fingerprint_by_python_answers: dict[tuple[tuple[str, Any], ...], tuple[str, str]] = {}


def test_no_python_questions_change_no_python(variant: Variant) -> None:
    """The suites run once per Python-changing combination (matrix.suite_variants): that
    is sound only if the other questions' answers leave every Python file unchanged."""
    key = matrix.python_answers(variant.answers)
    fingerprint = python_fingerprint(variant.path)
    first, expected = _fingerprint_by_python_answers.setdefault(key, (variant.name, fingerprint))
    assert fingerprint == expected, f"[{variant.name}] Python sources differ from {first}'s"


def test_ruff_lint(variant: Variant, record_suite_run: list[SuiteRun]) -> None:
    check_python_once(variant, "ruff check", [tool("ruff"), "check", "."], record_suite_run)


def newest_python_cases() -> list[Any]:
    """Each Python-changing combination, answered with the newest offered python_version
    (the matrix renders the default): the template writes version-specific code (PEP 695
    generics from 3.12) and ruff's pyupgrade rules follow the target (UP037 flags quoted
    annotations from 3.14 on, PEP 649)."""
    newest = str(matrix.choice_values(matrix.questions()["python_version"])[-1])
    return [
        pytest.param({**answers, "python_version": newest}, id=variant_name(answers))
        for answers in matrix.suite_variants()
    ]


@pytest.mark.parametrize("variant", newest_python_cases(), indirect=True)
def test_newest_python_render_is_ruff_clean(
    variant: Variant, record_suite_run: list[SuiteRun]
) -> None:
    for step, command in (
        ("ruff check", [tool("ruff"), "check", "."]),
        ("ruff format --check", [tool("ruff"), "format", "--check", "--diff", "."]),
    ):
        run_in_service(
            variant.path, command, variant=variant.name, step=step, runs=record_suite_run
        )


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
    """(variant, backend) pairs over every Python-changing combination: real services for
    each when configured, else SQLite for each; the default variant always runs on SQLite
    too."""
    backends = service_backends()
    cases = []
    for answers in matrix.suite_variants():
        for backend in backends:
            if backend == "sqlite" and "postgres" in backends and answers != matrix.defaults():
                continue
            cases.append(pytest.param(answers, backend, id=f"{variant_name(answers)}-{backend}"))
    return cases


@pytest.mark.parametrize(("variant", "backend"), suite_cases(), indirect=["variant"])
def test_generated_suite(variant: Variant, backend: str, record_suite_run: list[SuiteRun]) -> None:
    """On PostgreSQL the default variant's suite runs without read replicas (and runs the
    replica tests); every other variant's runs whole with a read replica (a streaming
    standby it builds: TEST_READ_REPLICA=1), the replica tests left to the default's."""
    env: dict[str, str | None] = {"TEST_DATABASE_URL": None, "TEST_REDIS_URL": None}
    label, header = "sqlite+memory", "backends: database=sqlite cache=memory"
    arguments: list[str] = []
    if backend == "postgres":
        env = {
            "TEST_DATABASE_URL": os.environ["TEST_DATABASE_URL"],
            "TEST_REDIS_URL": os.environ["TEST_REDIS_URL"],
            "TEST_READ_REPLICA": None,
        }
        label, header = "postgresql+redis", "backends: database=postgresql cache=redis"
        if not variant.is_default:
            env["TEST_READ_REPLICA"] = "1"
            arguments = [f"--deselect={READ_REPLICA_TESTS}"]
            label = "postgresql+redis+read-replica"
            header += " read-replica=standby"
    result = run_in_service(
        variant.path,
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfEs", *arguments],
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
