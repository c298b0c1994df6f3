"""Unit tests of the Jinja extensions in extensions/."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from jinja2 import Environment

EXTENSIONS = Path(__file__).resolve().parent.parent / "extensions"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"template_ext_{name}", EXTENSIONS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


naming = load("naming")
validation = load("validation")
secret_key = load("secret_key")
context = load("context")


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("My Service", "my-service"),
        ("  Orders   API v2 ", "orders-api-v2"),
        ("Café Déjà-vu", "cafe-deja-vu"),
        ("under_score", "under-score"),
        ("!!!", ""),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert naming.slugify(name) == slug


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("my-service", "my_service"),
        ("2fa gateway", "_2fa_gateway"),
        ("", "_"),
        ("Ünïcode", "unicode"),
    ],
)
def test_identifier_is_a_valid_python_identifier(name: str, expected: str) -> None:
    result = naming.identifier(name)
    assert result == expected
    assert result.isidentifier()


@pytest.mark.parametrize("slug", ["orders", "orders-service", "a1-b2"])
def test_slug_error_accepts_good_slugs(slug: str) -> None:
    assert validation.slug_error(slug) == ""


@pytest.mark.parametrize(
    ("slug", "fragment"),
    [
        ("", "Enter a project slug"),
        ("Orders", "lowercase letters"),
        ("orders--service", "single hyphens"),
        ("1orders", "starting with a letter"),
        ("orders_service", "lowercase letters"),
        ("class", "Python keyword"),
        ("match", "Python keyword"),
        ("app", "clashes"),
        ("json", "clashes"),
    ],
)
def test_slug_error_explains_what_to_type(slug: str, fragment: str) -> None:
    message = validation.slug_error(slug)
    assert fragment in message
    assert "for example: orders-service" in message


@pytest.mark.parametrize("email", ["jane@example.com", "a.b+c@sub.example.org"])
def test_email_error_accepts_addresses(email: str) -> None:
    assert validation.email_error(email) == ""


@pytest.mark.parametrize(
    "email", ["", "jane", "jane@", "jane@example", "ja ne@example.com", "a@b@c.com"]
)
def test_email_error_rejects_non_addresses(email: str) -> None:
    assert "type one like: jane@example.com" in validation.email_error(email)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "Enter a project name"),
        ("   ", "Enter a project name"),
        ("123", "at least one letter"),
        ('Bad "quote"', "Use letters"),
        ("x" * 81, "at most 80"),
    ],
)
def test_project_name_error(name: str, fragment: str) -> None:
    assert fragment in validation.project_name_error(name)


def test_project_name_error_accepts_normal_names() -> None:
    assert validation.project_name_error("Orders Service 2.0") == ""


def test_random_secret_is_fresh_and_long() -> None:
    secrets = {secret_key.random_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(value) >= 64 for value in secrets)


def test_random_secret_refuses_short_secrets() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        secret_key.random_secret(16)


def test_extensions_register_their_filters_and_globals() -> None:
    env = Environment(
        extensions=[
            naming.NamingExtension,
            validation.ValidationExtension,
            secret_key.SecretKeyExtension,
        ]
    )
    rendered = env.from_string(
        "{{ 'My App' | slugify }} {{ 'My App' | identifier }} {{ 'x' | slug_error == '' }} "
        "{{ random_secret() | length > 40 }}"
    ).render()
    assert rendered == "my-app my_app True True"


def test_dependencies_follow_the_answers() -> None:
    answers = {
        "storage_backend": "local",
        "email_provider": "smtp",
        "token_transport": "body",
    }
    runtime, dev = context.dependencies_for(answers)
    assert any(req.startswith("fastapi") for req in runtime)
    assert any(req.startswith("pytest") for req in dev)
    assert runtime == sorted(set(runtime), key=str.lower)


def test_context_hook_only_acts_when_rendering() -> None:
    hook = context.VariantContext.__new__(context.VariantContext)
    prompting = {"_copier_phase": "prompt", "python_version": "3.12"}
    hook.hook(prompting)
    assert "runtime_dependencies" not in prompting
    rendering = {
        "_copier_phase": "render",
        "python_version": "3.12",
        "storage_backend": "local",
        "email_provider": "smtp",
        "token_transport": "body",
    }
    hook.hook(rendering)
    assert rendering["python_target"] == "py312"
    assert rendering["runtime_dependencies"]
