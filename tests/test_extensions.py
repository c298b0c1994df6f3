"""Unit tests of the Jinja extensions in extensions/."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import subprocess
import sys
import tomllib
import unicodedata
from email.headerregistry import Address
from pathlib import Path
from types import ModuleType

import dotenv
import pytest
import yaml
from jinja2 import Environment
from markdown_it import MarkdownIt
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.rendering import tool

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
escaping = load("escaping")
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
        ("Orders", "lowercase ASCII letters"),
        ("заказы", "lowercase ASCII letters"),
        ("a" * 51, "at most 50"),
        ("orders--service", "single hyphens"),
        ("1orders", "starting with a letter"),
        ("orders_service", "lowercase ASCII letters"),
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


def every_dependency_name() -> set[str]:
    """Each distribution a rendered service names in pyproject.toml, in any variant."""
    context = load("context")
    names = {"hatchling"}
    for storage in ("local", "s3"):
        for provider in ("smtp", "api"):
            answers = {"storage_backend": storage, "email_provider": provider}
            runtime, dev = context.dependencies_for({**answers, "token_transport": "body"})
            names |= {canonicalize_name(Requirement(line).name) for line in runtime + dev}
    for lines in context.OPTIONAL_DEPENDENCIES.values():
        names |= {canonicalize_name(Requirement(line).name) for line in lines}
    return names


@pytest.mark.parametrize("slug", sorted(every_dependency_name()))
def test_slug_error_refuses_every_dependency_of_the_service(slug: str) -> None:
    """A project named like its dependency depends on itself: `uv lock` cannot resolve it."""
    message = validation.slug_error(slug)
    assert "a package the service depends on" in message
    assert f"for example: {slug}-service" in message
    assert validation.slug_error(f"{slug}-service") == ""


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("FastAPI", "fastapi-service"),
        ("Redis", "redis-service"),
        ("Pydantic", "pydantic-service"),
        ("Rich", "rich-service"),
    ],
)
def test_default_slug_avoids_the_services_dependencies(name: str, slug: str) -> None:
    assert validation.default_slug(name) == slug


def test_lock_task_fails_with_uvs_own_error(tmp_path: Path) -> None:
    """A lock uv cannot resolve fails the copy with uv's message, not a guess about the
    network, and leaves no uv.lock."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "fastapi"\nversion = "0.1.0"\n'
        'requires-python = ">=3.11"\ndependencies = ["fastapi>=0.143"]\n'
    )
    script = Path(__file__).resolve().parent.parent / "tasks/lock.py"
    result = subprocess.run(
        [sys.executable, str(script), "copy"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "depends on itself" in result.stderr
    assert "package index is reachable" not in result.stderr
    assert "choose another" in result.stderr
    assert not (tmp_path / "uv.lock").exists()


@pytest.mark.parametrize(
    "email", ["jane@example.com", "a.b+c@sub.example.org", '"jane doe"@example.com']
)
def test_email_error_accepts_addresses(email: str) -> None:
    assert validation.email_error(email) == ""


@pytest.mark.parametrize(
    "email",
    [
        "",
        "jane",
        "jane@",
        "jane@example",
        "ja ne@example.com",
        "a@b@c.com",
        # What hatchling's `Address(addr_spec=...)` refuses, failing `make install`:
        "a,b@example.com",
        "a<b>@example.com",
        "a\x01b@example.com",
        "a..b@example.com",
        "jané@example.com",
        # Written as typed, so what the parser would change is refused too:
        " jane@example.com ",
        "jane(x)@example.com",
    ],
)
def test_email_error_rejects_non_addresses(email: str) -> None:
    assert "type one like: jane@example.com" in validation.email_error(email)


@pytest.mark.parametrize("email", ["jane@example.com", '"jane doe"@example.com'])
def test_accepted_emails_are_what_hatchling_writes(email: str) -> None:
    """The metadata line hatchling builds from the answer (Author-email) parses back."""
    assert validation.email_error(email) == ""
    header = str(Address(display_name="Jane", addr_spec=email))
    assert Address(addr_spec=email).addr_spec == email
    assert email in header


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "Enter a project name"),
        ("   ", "Enter a project name"),
        ("123", "at least one letter"),
        ("x" * 81, "at most 80"),
        ("Cost in $", "Leave out '$'"),
        ("Two\nlines", "on one line"),
        ("Tab\there", "on one line"),
    ],
)
def test_project_name_error(name: str, fragment: str) -> None:
    message = validation.project_name_error(name)
    assert fragment in message
    assert "for example: Orders Service" in message


@pytest.mark.parametrize(
    "name",
    ["Orders Service 2.0", 'Bad "quote" \\ {{ x }}', "Сервис заказов", "订单服务", "שירות 😀"],
)
def test_project_name_error_accepts_any_script_and_punctuation(name: str) -> None:
    assert validation.project_name_error(name) == ""


@pytest.mark.parametrize(
    ("validator", "value", "fragment"),
    [
        ("description_error", "one\ntwo", "on one line"),
        ("description_error", "x" * 301, "at most 300"),
        ("author_name_error", "  ", "Enter a name"),
        ("author_name_error", "Jane\rDoe", "on one line"),
    ],
)
def test_free_text_validators_say_what_to_type(validator: str, value: str, fragment: str) -> None:
    message = getattr(validation, validator)(value)
    assert fragment in message
    assert "for example:" in message


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("My Service", "my-service"),
        ("2FA Service", "service-2fa"),
        ("42", "service-42"),
        ("App", "app-service"),
        ("Class", "class-service"),
        ("Json", "json-service"),
        ("Сервис заказов", "service"),
        ("", "service"),
        ("word " * 30, "-".join(["word"] * 10)),
        ("x" * 90, "x" * 50),
    ],
)
def test_default_slug_passes_the_slug_validator(name: str, slug: str) -> None:
    assert validation.default_slug(name) == slug
    assert validation.slug_error(slug) == ""


HOSTILE = [
    "He said \"hi\" and 'bye'",
    "back\\slash\\",
    "{{ jinja }} {% tag %} {# c #}",
    "$(id) `id` ${HOME} $PATH",
    "emoji 😀👩\u200d💻 and עברית with \u202eoverride\u202c",
    "tab\tnew\nline\x00nul\x7fdel",
    "订单服务" * 40,
    "word " * 40,
    # A no-break space between non-Latin words: "\\xa0" would glue Latin letters to them.
    "Сервис\N{NO-BREAK SPACE}заказов",
    "Ελληνικό\N{NO-BREAK SPACE}κατάστημα",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_toml_json_yaml_strings_read_back(value: str) -> None:
    assert tomllib.loads(f"v = {escaping.toml_string(value)}")["v"] == value
    assert json.loads(escaping.json_string(value)) == value
    assert yaml.safe_load(f"v: {escaping.yaml_string(value)}")["v"] == value


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(("column", "indent"), [(0, 0), (24, 4), (20, 8)])
def test_py_string_reads_back_and_fits_the_line(value: str, column: int, indent: int) -> None:
    literal = escaping.py_string(value, column=column, indent=indent)
    assert ast.literal_eval(literal) == value
    lines = (" " * column + literal).splitlines()
    assert all(escaping.display_width(line) <= escaping.LINE_LENGTH for line in lines[1:])


def test_py_string_is_what_ruff_format_writes() -> None:
    source = "".join(
        f"V{i}: str = {escaping.py_string(value, column=len(f'V{i}: str = '), trailer=0)}\n"
        for i, value in enumerate(HOSTILE)
    )
    # RUF001: confusable letters (a Cyrillic letter in a word with Latin ones).
    for command in (["format", "--diff", "-"], ["check", "--select", "E,W,Q,RUF001", "-"]):
        result = subprocess.run(
            [tool("ruff"), *command, "--stdin-filename", "answers.py"],
            input=source,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "value",
    [
        "A *bold* _claim_ with `code`, [a link](x) and <b>html</b> & &amp; entities",
        "# not a heading #",
        "- not a list",
        "1. not a list",
        "> not a quote",
        "| not | a table |",
        "~~not struck~~ \\ back\\slash",
        "emoji 😀 and עברית",
    ],
)
def test_md_text_renders_as_the_text(value: str) -> None:
    markdown = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    tokens = markdown.parse(escaping.md_text(value) + "\n")
    assert [token.type for token in tokens] == ["paragraph_open", "inline", "paragraph_close"]
    inline = tokens[1]
    assert "".join(child.content for child in inline.children or []) == value


@pytest.mark.parametrize("value", ['Name "quoted" \\ it\'s {{ x }} `id` 😀 עברית', "plain"])
def test_dotenv_string_reads_back(value: str) -> None:
    parsed = dotenv.dotenv_values(stream=io.StringIO(f"NAME={escaping.dotenv_string(value)}\n"))
    assert parsed["NAME"] == value


@pytest.mark.parametrize("value", ["a $b", "${HOME}", "two\nlines"])
def test_dotenv_string_refuses_what_has_no_portable_spelling(value: str) -> None:
    with pytest.raises(ValueError, match=r"no \.env spelling"):
        escaping.dotenv_string(value)


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
            escaping.EscapingExtension,
        ]
    )
    rendered = env.from_string(
        "{{ 'My App' | slugify }} {{ 'My App' | identifier }} {{ 'x' | slug_error == '' }} "
        "{{ random_secret() | length > 40 }} {{ '2FA' | default_slug }} "
        "{{ 'a\"b' | toml_string }} {{ 'a\"b' | py_string }} {{ 'a*b' | md_text }}"
    ).render()
    assert rendered == 'my-app my_app True True service-2fa "a\\"b" \'a"b\' a\\*b'


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
    assert rendering["python_classifiers"] == [
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Programming Language :: Python :: 3.14",
        "Programming Language :: Python :: 3 :: Only",
    ]
    assert rendering["runtime_dependencies"]


def test_offered_pythons_are_copier_ymls_choices() -> None:
    questions = yaml.safe_load((EXTENSIONS.parent / "copier.yml").read_text())
    assert tuple(questions["python_version"]["choices"]) == context.OFFERED_PYTHONS


def test_env_keys_task_adds_missing_keys_and_keeps_the_rest(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parent.parent / "tasks/env_keys.py"
    env_file = tmp_path / ".env"
    env_file.write_text("SECRET_KEY=keep-me\nexport OTHER=1")

    def run() -> str:
        result = subprocess.run(
            [sys.executable, str(script), str(env_file), "POSTGRES_PASSWORD", "OTHER"],
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stderr

    assert "Added POSTGRES_PASSWORD" in run()
    first = dotenv.dotenv_values(env_file)
    assert first["SECRET_KEY"] == "keep-me"
    assert first["OTHER"] == "1"
    assert len(first["POSTGRES_PASSWORD"] or "") >= 64
    assert run() == ""  # nothing missing: nothing written, nothing said
    assert dotenv.dotenv_values(env_file) == first


def test_the_confusables_list_matches_the_pinned_ruff(tmp_path: Path) -> None:
    """extensions/ruff_confusables.txt is what the service's pinned ruff reports (RUF001),
    each printable character alone in a string. After a ruff bump, regenerate the list:
    the characters this test finds, one `XXXX NAME` line each."""
    [pinned] = [line for line in context.DEV_DEPENDENCIES if line.startswith("ruff==")]
    characters = [
        chr(code)
        for code in range(0x80, 0x30000)
        if chr(code).isprintable() and unicodedata.category(chr(code)) not in {"Co", "Cn"}
    ]
    source = tmp_path / "characters.py"
    source.write_text(
        "".join(f'X{ord(char):X} = "x {char} x"\n' for char in characters), encoding="utf-8"
    )
    found = subprocess.run(
        [
            "uv",
            "tool",
            "run",
            "--from",
            pinned,
            "ruff",
            "check",
            "--isolated",
            "--select",
            "RUF001",
            "--output-format",
            "json",
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    reported = {characters[finding["location"]["row"] - 1] for finding in json.loads(found.stdout)}
    assert reported, found.stderr
    assert sorted(reported) == sorted(escaping.RUFF_CONFUSABLES)
