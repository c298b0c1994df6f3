"""Answers: bad ones are refused with a message that says what to type and nothing is
written; any other (any script, any punctuation) renders into files that parse and read
it back unchanged."""

from __future__ import annotations

import ast
import gzip
import io
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import dotenv
import dotenv.parser
import pytest
import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from tests.rendering import render, run_in_service, tool


def copier_cli(template: Path, destination: Path, *data: str) -> subprocess.CompletedProcess[str]:
    args = [tool("copier"), "copy", "--trust", "--defaults", "--vcs-ref", "HEAD"]
    for item in data:
        args += ["--data", item]
    return subprocess.run(
        [*args, str(template), str(destination)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("project_name=", "Enter a project name"),
        (
            "project_slug=Orders_Service",
            "use lowercase ASCII letters, digits and single hyphens",
        ),
        ("project_slug=", "Enter a project slug"),
        ("project_slug=import", "is a Python keyword"),
        ("project_slug=app", "clashes with a name"),
        ("author_email=not-an-email", "type one like: jane@example.com"),
        # What hatchling refuses when `make install` builds the project:
        ("author_email=a,b@example.com", "type one like: jane@example.com"),
        ("author_email=a<b>@example.com", "type one like: jane@example.com"),
        ("author_email= jane@example.com ", "type one like: jane@example.com"),
        # A project named like its dependency depends on itself: `uv lock` fails.
        ("project_slug=fastapi", "for example: fastapi-service"),
        ("project_slug=pydantic-settings", "a package the service depends on"),
        ("author_name=  ", "Enter a name"),
        ("python_version=3.9", "Invalid choice for 'python_version'"),
        ("storage_backend=ftp", "Invalid choice for 'storage_backend'"),
        ("email_provider=carrier-pigeon", "Invalid choice for 'email_provider'"),
        ("token_transport=header", "Invalid choice for 'token_transport'"),
    ],
)
def test_bad_answer_fails_clearly_and_writes_nothing(
    template_repo: Path, tmp_path: Path, answer: str, message: str
) -> None:
    destination = tmp_path / "service"
    result = copier_cli(template_repo, destination, answer)
    assert result.returncode != 0, f"copier accepted {answer!r}"
    assert message in result.stderr.strip().splitlines()[-1], result.stderr[-2000:]
    assert not destination.exists(), "a refused answer left a half-written destination"


def test_answers_shape_the_rendered_names(template_repo: Path, tmp_path: Path) -> None:
    project = render(
        template_repo,
        tmp_path / "svc",
        {
            "project_name": "Orders Ledger",
            "author_email": "team@orders.example",
            "python_version": "3.12",
        },
    )
    pyproject = (project / "pyproject.toml").read_text()
    assert 'name = "orders-ledger"' in pyproject
    assert 'requires-python = ">=3.12"' in pyproject
    assert 'target-version = "py312"' in pyproject
    assert 'email = "team@orders.example"' in pyproject
    assert 'project_name: str = "Orders Ledger"' in (project / "app/core/config.py").read_text()
    assert "sqlite+aiosqlite:///./orders_ledger.db" in (project / ".env").read_text()


# --- Any answer: hostile free text renders into files that parse and read it back ---

# Every kind of character that has a meaning somewhere: quotes of both kinds,
# backslashes, Jinja and shell syntax, Markdown markup, emoji, right-to-left text
# and a bidi override, non-Latin scripts.
HOSTILE_NAME = (
    "Ünïcödé \"Quoted\" 'it's' \\ {{ x }} {% if %} `id` (x) 😀 שלום Сервис\N{NO-BREAK SPACE}заказов"
    " \N{RIGHT SINGLE QUOTATION MARK}\N{EN DASH}\N{MULTIPLICATION SIGN}"
)
HOSTILE_DESCRIPTION = (
    'Sandbox for items based on "Universal Product Code" (UPC): \\back\\slash\\ '
    "{{ 7*7 }} {% raw %} {#c#} `id` $(rm -rf /) ${HOME} $PATH 'single' * _x_ # [a](b) "
    "<b>x</b> & &amp; | ~~s~~ 😀👩\u200d💻 עברית مرحبا \u202eevil\u202c 订单服务 "
    # Everyday typography and look-alikes that ruff reports (RUF001) unless allowed.
    "Bob\N{RIGHT SINGLE QUOTATION MARK}s Shop \N{EN DASH} EU, Gestion "
    "d\N{RIGHT SINGLE QUOTATION MARK}inventaire \N{EM DASH} l\N{RIGHT SINGLE QUOTATION MARK}"
    "entrep\N{LATIN SMALL LETTER O WITH CIRCUMFLEX}t, 2\N{MULTIPLICATION SIGN}3 \N{MINUS SIGN} "
    "1 \N{INFORMATION SOURCE} \N{FULLWIDTH LATIN CAPITAL LETTER F}"
    "\N{FULLWIDTH LATIN SMALL LETTER U}ll \N{GREEK CAPITAL LETTER ALPHA}"
    "\N{GREEK CAPITAL LETTER BETA} "
    "\N{GREEK SMALL LETTER OMICRON}\N{CYRILLIC SMALL LETTER HA}"
)
HOSTILE_AUTHOR = 'O\'Brien "Jr" \\ {{ x }} 😀 עברית'
HOSTILE_EMAIL = "o'brien+{{x}}@example.com"
# CommonMark with GitHub's tables and strikethrough, as a README is shown.
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
HOSTILE_VARIANTS = {
    "defaults": {},
    "other-choices": {
        "storage_backend": "s3",
        "email_provider": "api",
        "token_transport": "cookie",
    },
}


@pytest.fixture(scope="module", params=sorted(HOSTILE_VARIANTS))
def hostile(
    request: pytest.FixtureRequest,
    template_repo: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    answers = {
        "project_name": HOSTILE_NAME,
        "project_description": HOSTILE_DESCRIPTION,
        "author_name": HOSTILE_AUTHOR,
        "author_email": HOSTILE_EMAIL,
        **HOSTILE_VARIANTS[request.param],
    }
    return render(template_repo, tmp_path_factory.mktemp("hostile") / "svc", answers)


def rendered_files(project: Path) -> list[Path]:
    return sorted(
        path
        for path in project.rglob("*")
        if path.is_file() and not {".git", ".venv", "__pycache__"} & set(path.parts)
    )


def parse_every_file(project: Path) -> dict[str, int]:
    """Parse each rendered file with its own format's parser; count files per kind."""
    counts: dict[str, int] = {}

    def parsed(kind: str) -> None:
        counts[kind] = counts.get(kind, 0) + 1

    for path in rendered_files(project):
        name = path.relative_to(project).as_posix()
        if path.suffix == ".gz":  # data shipped as is (the password blocklist): no answer in it
            gzip.decompress(path.read_bytes())
            parsed("gzip")
            continue
        text = path.read_text()
        if path.suffix == ".toml":
            tomllib.loads(text)
            parsed("toml")
        elif path.suffix == ".py":
            compile(text, name, "exec", flags=ast.PyCF_ONLY_AST)
            parsed("python")
        elif path.suffix in {".yml", ".yaml"}:
            list(yaml.safe_load_all(text))
            parsed("yaml")
        elif path.suffix == ".json":
            json.loads(text)
            parsed("json")
        elif path.suffix == ".sh":
            subprocess.run(["bash", "-n", str(path)], check=True)
            parsed("shell")
        elif path.name.startswith(".env"):
            bindings = list(dotenv.parser.parse_stream(io.StringIO(text)))
            assert [b.original.string for b in bindings if b.error] == [], name
            parsed("dotenv")
        elif path.suffix == ".md":
            MARKDOWN.parse(text)
            parsed("markdown")
    return counts


def test_hostile_answers_render_files_that_all_parse(hostile: Path) -> None:
    counts = parse_every_file(hostile)
    assert {"toml", "python", "yaml", "dotenv", "markdown"} <= set(counts), counts
    # Shell inside the CI workflow and the Makefile: bash parses every `run:` script.
    for workflow in (hostile / ".github/workflows").glob("*.yml"):
        for job in yaml.safe_load(workflow.read_text())["jobs"].values():
            for step in job["steps"]:
                if "run" in step:
                    subprocess.run(["bash", "-n"], input=step["run"], text=True, check=True)
    subprocess.run(["make", "-n", "help", "check"], cwd=hostile, check=True, capture_output=True)


def test_hostile_answers_come_back_unchanged_where_they_are_read(hostile: Path) -> None:
    project = tomllib.loads((hostile / "pyproject.toml").read_text())["project"]
    assert project["description"] == HOSTILE_DESCRIPTION
    assert project["authors"] == [{"name": HOSTILE_AUTHOR, "email": HOSTILE_EMAIL}]

    example = dotenv.dotenv_values(hostile / ".env.example")
    assert example["PROJECT_NAME"] == HOSTILE_NAME
    assert example["EMAIL_FROM_NAME"] == HOSTILE_NAME

    answers = yaml.safe_load((hostile / ".copier-answers.yml").read_text())
    assert answers["project_name"] == HOSTILE_NAME
    assert answers["project_description"] == HOSTILE_DESCRIPTION

    readme = MARKDOWN.parse((hostile / "README.md").read_text())
    inline = [token for token in readme if token.type == "inline"]
    assert plain_text(inline[0]) == HOSTILE_NAME
    assert plain_text(inline[1]) == HOSTILE_DESCRIPTION

    # The service itself: settings defaults and the OpenAPI document.
    script = (
        "import json; from app.core.config import Settings; from app.main import create_app\n"
        "s = Settings(_env_file=None, environment='test')\n"
        "app = create_app(s)\n"
        "print(json.dumps([s.project_name, s.email_from_name, app.title, app.description,"
        " app.openapi()['info']['description']]))"
    )
    result = run_in_service(
        hostile,
        [sys.executable, "-c", script],
        variant="hostile",
        step="read the answers back",
        env={"TEST_DATABASE_URL": None, "TEST_REDIS_URL": None},
    )
    assert (
        json.loads(result.stdout.splitlines()[-1]) == [HOSTILE_NAME] * 3 + [HOSTILE_DESCRIPTION] * 2
    )


def plain_text(inline: Token) -> str:
    """The text a Markdown inline renders as (markup removed, escapes resolved)."""
    return (
        "".join(
            child.content
            for child in inline.children or []
            if child.type in {"text", "code_inline"}
        )
        or inline.content
    )


def test_hostile_answers_keep_the_code_lint_and_format_clean(hostile: Path) -> None:
    for step, command in {
        "ruff check": [tool("ruff"), "check", "."],
        "ruff format --check": [tool("ruff"), "format", "--check", "."],
    }.items():
        run_in_service(hostile, command, variant="hostile", step=step)


# --- Names in any script; derived defaults pass their own validators ---


@pytest.mark.parametrize(
    ("data", "slug"),
    [
        (["project_name=Сервис заказов", "project_slug=orders-service"], "orders-service"),
        (["project_name=订单服务"], "service"),
        (["project_name=2FA Service"], "service-2fa"),
        (["project_name=App"], "app-service"),
        (["project_name=Json"], "json-service"),
        (["project_name=Café Déjà-vu"], "cafe-deja-vu"),
    ],
)
def test_any_name_renders_with_a_valid_slug(
    template_repo: Path, tmp_path: Path, data: list[str], slug: str
) -> None:
    destination = tmp_path / "service"
    result = copier_cli(template_repo, destination, *data)
    assert result.returncode == 0, result.stderr[-3000:]
    pyproject = tomllib.loads((destination / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == slug
    name = data[0].removeprefix("project_name=")
    assert f"# {name}\n" in (destination / "README.md").read_text()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("project_name=Price in $USD", "Leave out '$'"),
        ("project_name=123 456", "at least one letter (any script)"),
        ("project_name=Two\nlines", "on one line"),
        ("project_description=Two\nlines", "on one line"),
        ("project_description=" + "x" * 301, "at most 300 characters"),
        ("author_name=Jane\tDoe", "on one line"),
        ("project_slug=" + "a" * 51, "at most 50 characters"),
        ("project_slug=сервис", "lowercase ASCII letters"),
    ],
)
def test_free_text_limits_say_what_to_type(
    template_repo: Path, tmp_path: Path, answer: str, message: str
) -> None:
    destination = tmp_path / "service"
    result = copier_cli(template_repo, destination, answer)
    assert result.returncode != 0, f"copier accepted {answer!r}"
    last_line = result.stderr.strip().splitlines()[-1]
    assert message in last_line, result.stderr[-2000:]
    assert "for example:" in last_line
    assert not destination.exists()


def test_compose_reads_the_name_from_env_like_the_service(hostile: Path, tmp_path: Path) -> None:
    """Docker Compose parses .env itself (env_file): it must read the same name."""
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed")
    shutil.copy(hostile / "docker-compose.yml", tmp_path)
    example = (hostile / ".env.example").read_text()
    (tmp_path / ".env").write_text(example + "POSTGRES_PASSWORD=example\n")
    result = subprocess.run(
        ["docker", "compose", "config", "--format", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    environment = json.loads(result.stdout)["services"]["app"]["environment"]
    assert environment["PROJECT_NAME"] == HOSTILE_NAME
    assert environment["EMAIL_FROM_NAME"] == HOSTILE_NAME


@pytest.mark.parametrize("name", ["Horse", "Violet Harbour", "Lantern", "Battery Staple"])
def test_the_generated_suite_passes_whatever_the_service_is_called(
    template_repo: Path, tmp_path: Path, name: str
) -> None:
    """The policy refuses a password that contains the service's name: the suite's own
    passwords must not depend on the name (a service named "Horse" failed them)."""
    project = render(template_repo, tmp_path / "svc", {"project_name": name}, skip_tasks=True)
    tests = [
        "tests/integration/test_cli.py",
        "tests/e2e/test_auth.py",
        "tests/e2e/test_security_headers.py",
    ]
    run_in_service(
        project,
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
        variant=f"project_name={name}",
        step="pytest",
        env={"TEST_DATABASE_URL": None, "TEST_REDIS_URL": None},
    )


def test_a_name_like_a_dependency_gets_a_slug_that_locks(
    template_repo: Path, tmp_path: Path
) -> None:
    """project_name=FastAPI used to derive the slug `fastapi`: `uv lock` failed on the
    self-dependency, the copy exited 0 and no uv.lock was written."""
    project = render(template_repo, tmp_path / "svc", {"project_name": "FastAPI"})
    assert tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"] == (
        "fastapi-service"
    )
    assert (project / "uv.lock").is_file()
