"""Storage x email variants: each renders only its own adapter code and dependencies.

Every combination is rendered and checked for what must and must not be in it;
the shared environment must satisfy each rendered pyproject. The combinations
other than the default one (which test_default_variant covers) also run their
own lint, type check and suite, on every configured backend.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from tests import matrix
from tests.conftest import service_backends
from tests.rendering import SuiteRun, render, run_in_service, tool, variant_name

ADAPTER_ANSWERS = ["storage_backend", "email_provider"]
TEXT_SUFFIXES = {".py", ".toml", ".md", ".ini", ".yml", ".example", ".html", ".txt", ".cfg"}

# Per answer: files only that answer renders, and words that must appear nowhere else.
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
}
VARIANT_WORDS: dict[str, dict[str, list[str]]] = {
    "storage_backend": {
        "local": ["LocalStorage", "STORAGE_LOCAL_ROOT", "storage_local_root"],
        "s3": ["boto3", "botocore", "moto", "S3Storage", "STORAGE_S3_", "storage_s3_", "presigned"],
    },
    "email_provider": {
        "smtp": ["aiosmtplib", "aiosmtpd", "SmtpEmailProvider", "SMTP_", "smtp_", "app.email.smtp"],
        "api": ["ApiEmailProvider", "EMAIL_API_", "email_api_", "sendgrid", "/v3/mail/send"],
    },
}
# Per answer: (runtime, dev) distributions its pyproject must list, and no other variant's.
VARIANT_PACKAGES: dict[str, dict[str, tuple[set[str], set[str]]]] = {
    "storage_backend": {"local": (set(), set()), "s3": ({"boto3"}, {"boto3-stubs", "moto"})},
    "email_provider": {"smtp": ({"aiosmtplib"}, {"aiosmtpd"}), "api": ({"httpx"}, set())},
}
SHARED_FILES = [
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
    "alembic/versions/0002_files.py",
    "tests/e2e/test_files.py",
    "tests/e2e/test_welcome_email.py",
]


def adapter_variants() -> list[dict[str, Any]]:
    toggles = matrix.toggles()
    return [
        dict(zip(ADAPTER_ANSWERS, values, strict=True))
        for values in itertools.product(*(toggles[name] for name in ADAPTER_ANSWERS))
    ]


VARIANTS = adapter_variants()
NON_DEFAULT = [
    answers
    for answers in VARIANTS
    if any(answers[name] != matrix.defaults()[name] for name in ADAPTER_ANSWERS)
]


def ids(answers: dict[str, Any]) -> str:
    return variant_name(answers)


@pytest.fixture(scope="module")
def rendered(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each storage x email combination rendered once for the module."""
    root = tmp_path_factory.mktemp("variants")
    return {ids(answers): render(template_repo, root / ids(answers), answers) for answers in VARIANTS}


def text_files(project: Path) -> dict[str, str]:
    return {
        path.relative_to(project).as_posix(): path.read_text()
        for path in project.rglob("*")
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name == ".env.example")
    }


def dependency_names(requirements: list[str]) -> set[str]:
    return {Requirement(requirement).name.lower() for requirement in requirements}


def pyproject(project: Path) -> dict[str, Any]:
    return tomllib.loads((project / "pyproject.toml").read_text())


@pytest.mark.parametrize("answers", VARIANTS, ids=ids)
def test_each_variant_renders_its_own_files_and_no_other(
    rendered: dict[str, Path], answers: dict[str, Any]
) -> None:
    project = rendered[ids(answers)]
    for name in ADAPTER_ANSWERS:
        for value, files in VARIANT_FILES[name].items():
            for file in files:
                exists = (project / file).is_file()
                expected = value == answers[name]
                assert exists == expected, f"[{ids(answers)}] {file} present={exists}"
    missing = [file for file in SHARED_FILES if not (project / file).is_file()]
    assert missing == [], f"[{ids(answers)}] shared files missing"
    assert not list(project.rglob("*.jinja")), f"[{ids(answers)}] unrendered templates"


@pytest.mark.parametrize("answers", VARIANTS, ids=ids)
def test_other_variants_leave_no_trace_in_the_text(
    rendered: dict[str, Path], answers: dict[str, Any]
) -> None:
    files = text_files(rendered[ids(answers)])
    for name in ADAPTER_ANSWERS:
        for value, words in VARIANT_WORDS[name].items():
            for word in words:
                found = sorted(path for path, text in files.items() if word in text)
                if value == answers[name]:
                    assert found, f"[{ids(answers)}] {word!r} should appear somewhere"
                else:
                    assert found == [], f"[{ids(answers)}] {word!r} of {name}={value} in {found}"


@pytest.mark.parametrize("answers", VARIANTS, ids=ids)
def test_rendered_text_is_clean(rendered: dict[str, Path], answers: dict[str, Any]) -> None:
    for path, text in text_files(rendered[ids(answers)]).items():
        if path.startswith("app/email/templates/"):
            continue  # Jinja2 templates of the service itself
        assert "{{" not in text and "{%" not in text, f"[{ids(answers)}] Jinja left in {path}"
        assert "\n\n\n\n" not in text, f"[{ids(answers)}] blank-line run in {path}"
        if text:
            assert text.endswith("\n") and not text.endswith("\n\n"), f"[{ids(answers)}] {path}"


@pytest.mark.parametrize("answers", VARIANTS, ids=ids)
def test_email_templates_are_copied_verbatim(
    rendered: dict[str, Path], answers: dict[str, Any]
) -> None:
    source = Path(__file__).resolve().parent.parent / "template/app/email/templates"
    target = rendered[ids(answers)] / "app/email/templates"
    for template in source.iterdir():
        assert (target / template.name).read_text() == template.read_text(), template.name


@pytest.mark.parametrize("answers", VARIANTS, ids=ids)
def test_dependencies_follow_the_answers(
    rendered: dict[str, Path], answers: dict[str, Any]
) -> None:
    config = pyproject(rendered[ids(answers)])
    runtime = dependency_names(config["project"]["dependencies"])
    dev = dependency_names(config["dependency-groups"]["dev"])
    for name in ADAPTER_ANSWERS:
        for value, (runtime_packages, dev_packages) in VARIANT_PACKAGES[name].items():
            chosen = value == answers[name]
            for package in runtime_packages - (set() if chosen else runtime & dev):
                assert (package in runtime) == chosen, f"[{ids(answers)}] runtime {package}"
            for package in dev_packages:
                assert (package in dev) == chosen, f"[{ids(answers)}] dev {package}"
    assert runtime & dev == set(), f"[{ids(answers)}] listed as runtime and dev"


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


@pytest.mark.parametrize("answers", VARIANTS, ids=ids)
def test_the_shared_environment_satisfies_the_rendered_pyproject(
    rendered: dict[str, Path], answers: dict[str, Any]
) -> None:
    config = pyproject(rendered[ids(answers)])
    requirements = config["project"]["dependencies"] + config["dependency-groups"]["dev"]
    problems = [
        problem
        for requirement in requirements
        for problem in _unsatisfied(Requirement(requirement), set())
    ]
    assert problems == [], f"[{ids(answers)}] add these to the `service` group"


@pytest.mark.parametrize("answers", VARIANTS, ids=ids)
def test_settings_and_env_example_follow_the_answers(
    rendered: dict[str, Path], answers: dict[str, Any]
) -> None:
    project = rendered[ids(answers)]
    documented = set(re.findall(r"^([A-Z_0-9]+)=", (project / ".env.example").read_text(), re.M))
    config = (project / "app/core/config.py").read_text()
    fields = {name.upper() for name in re.findall(r"^    ([a-z_0-9]+): ", config, re.M)}
    assert fields == documented, f"[{ids(answers)}] settings and .env.example differ"


@pytest.mark.slow
@pytest.mark.parametrize("answers", NON_DEFAULT, ids=ids)
def test_variant_checks_and_suite_pass(
    rendered: dict[str, Path],
    answers: dict[str, Any],
    mypy_cache_dir: Path,
    record_suite_run: list[SuiteRun],
) -> None:
    project = rendered[ids(answers)]
    variant = ids(answers)
    steps = {
        "ruff check": [tool("ruff"), "check", "."],
        "ruff format --check": [tool("ruff"), "format", "--check", "--diff", "."],
        "lint-imports": [tool("lint-imports")],
        "mypy": [tool("mypy"), "--cache-dir", str(mypy_cache_dir)],
    }
    for step, command in steps.items():
        run_in_service(project, command, variant=variant, step=step, runs=record_suite_run)
    for backend in service_backends():
        env: dict[str, str | None] = {"TEST_DATABASE_URL": None, "TEST_REDIS_URL": None}
        label = "sqlite+memory"
        if backend == "postgres":
            env = {name: os.environ[name] for name in ("TEST_DATABASE_URL", "TEST_REDIS_URL")}
            label = "postgresql+redis"
        result = run_in_service(
            project,
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
            variant=variant,
            step=f"pytest ({label})",
            env=env,
            backend=label,
            runs=record_suite_run,
        )
        assert " passed" in result.stdout, f"[{variant}] no test ran on {label}"
