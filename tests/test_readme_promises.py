"""Every variant keeps its README's promises: the commands it shows run, as written.

For each combination of the answers that change Python code (`matrix.suite_variants()`),
the generated README.md is read by three markers, each an HTML comment around one fenced
`sh` block:

- `<!-- quick-start -->`: the commands that install and serve the service. Each runs in a
  copy of the render, in order; every one must succeed but the last, which serves: it
  must answer `/health/live`, and stop cleanly, leaving no process behind, on Ctrl-C
  (SIGINT to its process group).
- `<!-- first-requests -->`: curl commands, each under a comment that starts with the
  status it answers and may list, in braces, the names of the JSON object it answers
  (`# 201 {"id", "download_url"}: ...`). They run against the served service, in order;
  a `<name>` in a command stands for that field of an earlier answer or, when none had
  it, for the last `name=value` in the service's log (the token of a link in a logged
  email). When a comment says the session's cookies are cleared, curl's cookie jar must
  hold none of them once the block has run (curl keeps cookies it loaded from its jar
  when one answer expires several of them: curl/curl#10685; a README that said so of its
  logout was wrong).
- `<!-- compose-env -->`: what to add to `.env` before `make up`. The generated `.env`, the
  block, and the app's `environment:` in docker-compose.yml (interpolated from them, as
  Compose does) must satisfy the variant's production guard (`Settings()` with that
  environment and no `.env` file, as in the image), and the guard must refuse the same
  environment without the block. No container runs.

`make up-dev` runs for real on the S3, email-API, cookie variant (the one with the most
to promise), with `.env` as the compose blocks leave it (a placeholder email API key
included): the first-requests block must answer as documented against the stack's app
(the download following its link to the stack's S3 from this host), email must go to
the log, PostgreSQL and Redis must answer on their published ports, and the S3 image's
moto must be uv.lock's. Skipped where no container engine can be had.

Each README also names only what its variant has: `make` targets of its Makefile, files
of its render, and no command or file of the deployment it lacks.

What the test changes in a command, and only that: the port (`make dev` gets a free
`PORT` and `S3_DEV_PORT` from the environment; `127.0.0.1:8000` in a request becomes that
port), curl's output (`-sS -o <file> -w %{http_code}` go first, to read the status), and
the virtualenv's place (`UV_PROJECT_ENVIRONMENT`): shared by the variants with the same
storage answer, each `make install` syncing it to the variant's own uv.lock. Renders are
shared with the other modules (`rendered_variant`).

The after-copy message of copier.yml is checked against the same quick start.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jinja2
import pytest
import yaml
from dotenv import dotenv_values

from tests import containers, matrix
from tests.conftest import REPO_ROOT
from tests.rendering import SuiteRun, render, variant_name

LOCAL_ADDRESS = "127.0.0.1:8000"
READY_SECONDS = 120
STOP_SECONDS = 30
LOG_WAIT_SECONDS = 5
# Not copied from a shared render: what other tests' runs may have left in it.
LEFTOVERS = shutil.ignore_patterns(
    ".venv", "*.db", "var", ".ruff_cache", ".mypy_cache", ".pytest_cache", "__pycache__"
)
EXPECTATION = re.compile(r"^# (?P<status>\d{3})\b(?:\s*\{(?P<fields>[^}]*)\})?")
PLACEHOLDER = re.compile(r"<([a-z_]+)>")
# Compose's interpolation: ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, $$.
# `${NAME}`, `${NAME:-default}`, `${NAME:?error}`, `${NAME:+replacement}` (and the forms
# without the colon), whose argument holds no other `${...}`: nested ones go first.
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>(?:[^}$]|\$(?!\{))*))?\}")
# `$$` while the rest is interpolated: a literal dollar sign.
ESCAPED_DOLLAR = "\0"


@dataclass(frozen=True)
class Command:
    text: str
    comment: str  # the comment line just above it, "" if none


def fenced_block(readme: str, marker: str) -> str:
    """The `sh` block between `<!-- marker -->` and `<!-- /marker -->`."""
    found = re.findall(
        rf"<!-- {marker} -->\n```sh\n(.*?)```\n<!-- /{marker} -->", readme, flags=re.S
    )
    assert len(found) == 1, f"the README has no (or several) `{marker}` blocks"
    return str(found[0])


def commands(block: str) -> list[Command]:
    """Shell commands (backslash continuations joined; a trailing `# ...` stays, for
    `shlex.split(..., comments=True)` to drop), each with the comment line above it."""
    found: list[Command] = []
    comment, pending = "", ""
    for line in block.splitlines():
        if not pending and line.startswith("#"):
            comment = line
            continue
        if not pending and not line.strip():
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        found.append(Command(pending + line, comment))
        comment, pending = "", ""
    assert not pending, "a command ends in a backslash"
    return found


def readme_of(project: Path) -> str:
    return (project / "README.md").read_text()


# The after-copy message ---------------------------------------------------------------


@pytest.mark.parametrize("answers", matrix.suite_variants(), ids=variant_name)
def test_the_after_copy_message_gives_the_readme_quick_start(
    answers: dict[str, Any], rendered_variant: Callable[[dict[str, Any]], Path]
) -> None:
    project = rendered_variant(answers)
    message = yaml.safe_load((REPO_ROOT / "copier.yml").read_text())["_message_after_copy"]
    text = (
        jinja2.Environment(undefined=jinja2.StrictUndefined)
        .from_string(message)
        .render(**answers, project_name="svc", _copier_conf={"dst_path": "svc"})
    )
    said = [line.split("#")[0].strip() for line in text.splitlines()]
    said = [line for line in said if line.startswith("make ")]
    quick_start = [
        command.text.split("#")[0].strip()
        for command in commands(fenced_block(readme_of(project), "quick-start"))
    ]
    assert said[: len(quick_start)] == quick_start, text
    if answers["storage_backend"] == "s3":
        assert "S3" in text, "the message must say where uploads go in development"


# Quick start and first requests -------------------------------------------------------


@pytest.fixture(scope="module")
def shared_environments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the shared virtualenvs live (`environment_key`): each variant's `make install`
    syncs one to its own uv.lock, the service itself included."""
    return tmp_path_factory.mktemp("readme-venvs")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def shell_environment(**extra: str) -> dict[str, str]:
    """This shell's environment, as a developer's would be: no virtualenv active."""
    uv = shutil.which("uv")
    assert uv, "uv is needed: the README's quick start runs through it"
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV",)}
    return {**env, **extra}


def run_step(
    command: list[str], cwd: Path, env: dict[str, str], step: str, runs: list[SuiteRun], name: str
) -> None:
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    runs.append(SuiteRun(name, step, result.returncode == 0, time.perf_counter() - started))
    assert result.returncode == 0, (
        f"[{name}] `{shlex.join(command)}` failed (exit {result.returncode})\n"
        f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
    )


@contextlib.contextmanager
def serving(
    command: list[str], cwd: Path, env: dict[str, str], port: int, ready: float = READY_SECONDS
) -> Iterator[Path]:
    """Run the serving command in its own process group until /health/live answers; on
    exit, Ctrl-C it (SIGINT to the group), as a developer would. Yields its log."""
    log = cwd.parent / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + ready
        while True:
            assert process.poll() is None, f"`{shlex.join(command)}` exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"not serving after {ready} s:\n{log.read_text()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        yield log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            pytest.fail(f"`{shlex.join(command)}` ignored Ctrl-C:\n{log.read_text()}")
        # Whatever the group started must be gone with it.
        deadline = time.monotonic() + STOP_SECONDS
        while group_alive(process.pid):
            if time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                pytest.fail(f"`{shlex.join(command)}` left processes behind:\n{log.read_text()}")
            time.sleep(0.2)


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def expected(command: Command) -> tuple[int, set[str] | None]:
    match = EXPECTATION.match(command.comment)
    assert match, f"no `# <status> ...` comment above `{command.text}`"
    fields = match.group("fields")
    names = set(re.findall(r'"(\w+)"', fields)) if fields is not None else None
    return int(match.group("status")), names


def logged_value(name: str, log: Path) -> str | None:
    """The last `name=value` in the log (a link's query parameter), waiting a little for
    what the service writes after its response (an email sent in the background)."""
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while True:
        found = re.findall(rf"\b{name}=([A-Za-z0-9_\-]+)", log.read_text(errors="replace"))
        if found or time.monotonic() > deadline:
            return found[-1] if found else None
        time.sleep(0.2)


def run_request(
    command: Command, port: int, values: dict[str, str], cwd: Path, body: Path, log: Path
) -> tuple[int, bytes]:
    text = command.text
    assert LOCAL_ADDRESS in text, f"the request does not go to {LOCAL_ADDRESS}: {text}"
    text = text.replace(LOCAL_ADDRESS, f"127.0.0.1:{port}")
    for name in set(PLACEHOLDER.findall(text)) - set(values):
        if (logged := logged_value(name, log)) is not None:
            values[name] = logged
    missing = sorted(set(PLACEHOLDER.findall(text)) - set(values))
    assert not missing, f"no earlier answer nor the log has {missing} for `{command.text}`"
    text = PLACEHOLDER.sub(lambda match: values[match.group(1)], text)
    argv = shlex.split(text, comments=True)
    assert argv[0] == "curl", f"not a curl command: {command.text}"
    result = subprocess.run(
        ["curl", "-sS", "-o", str(body), "-w", "%{http_code}", *argv[1:]],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"`{command.text}`: curl failed: {result.stderr}"
    return int(result.stdout), body.read_bytes()


def remember(values: dict[str, str], content: bytes) -> dict[str, Any] | None:
    try:
        answer = json.loads(content)
    except ValueError:
        return None
    if isinstance(answer, dict):
        values.update({key: str(value) for key, value in answer.items() if value is not None})
        return answer
    return None


def run_first_requests(
    requests: list[Command], port: int, project: Path, answers: Path, log: Path, name: str
) -> None:
    """Run the README's first requests in order against the service on `port`, from the
    project's directory, each answering its documented status (and fields); answers are
    kept in `answers`. Then, if the requests kept cookies in a jar and the README says the
    session's cookies are cleared, the jar must hold none of them."""
    values: dict[str, str] = {}
    for number, command in enumerate(requests):
        status, fields = expected(command)
        answered, content = run_request(
            command, port, values, project, answers / f"answer-{number}", log
        )
        where = f"[{name}] `{command.text}` ({command.comment})"
        assert answered == status, (
            f"{where}: {answered} {content[:2000]!r}\n{log.read_text()[-4000:]}"
        )
        answer = remember(values, content)
        if fields is not None:
            assert answer is not None, f"{where}: not a JSON object: {content[:500]!r}"
            assert set(answer) == fields, f"{where}: answered {sorted(answer)}"
    for jar in sorted({argument for command in requests for argument in cookie_jars(command)}):
        clearing = [command for command in requests if "cookies are cleared" in command.comment]
        if clearing:
            kept = jar_cookies(project / jar)
            assert kept == [], f"[{name}] {clearing[0].comment!r}, but {jar} keeps {kept}"


def cookie_jars(command: Command) -> list[str]:
    """The cookie jars curl writes in `command` (`-c FILE`, `--cookie-jar FILE`)."""
    argv = shlex.split(PLACEHOLDER.sub("x", command.text), comments=True)
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in ("-c", "--cookie-jar")]


def jar_cookies(jar: Path) -> list[str]:
    """The names of the cookies in a curl cookie jar (Netscape format, where `#HttpOnly_`
    starts the line of an HttpOnly cookie rather than a comment)."""
    names = []
    for line in jar.read_text().splitlines():
        line = line.removeprefix("#HttpOnly_")
        if line.strip() and not line.startswith("#"):
            names.append(line.split("\t")[5])
    return names


def environment_key(answers: dict[str, Any]) -> str:
    """Which shared virtualenv a variant's `make install` syncs: one per storage answer.
    Most of a fresh install is compiling bytecode (`--compile-bytecode`), and S3's
    packages (moto, boto3's stubs) are most of that: measured here, a fresh S3 environment
    took 50 s, a local one 25 s, and syncing an existing one to the other email answer's
    packages a few seconds. The variants run grouped by storage (matrix order)."""
    return f"storage-{answers['storage_backend']}"


@pytest.mark.slow
@pytest.mark.parametrize("answers", matrix.suite_variants(), ids=variant_name)
def test_the_quick_start_serves_and_the_first_requests_answer_as_documented(
    answers: dict[str, Any],
    rendered_variant: Callable[[dict[str, Any]], Path],
    shared_environments: Path,
    tmp_path: Path,
    record_suite_run: list[SuiteRun],
) -> None:
    name = f"readme:{variant_name(answers)}"
    project = tmp_path / "svc"
    shutil.copytree(rendered_variant(answers), project, ignore=LEFTOVERS)
    readme = readme_of(project)
    quick_start = commands(fenced_block(readme, "quick-start"))
    requests = commands(fenced_block(readme, "first-requests"))
    assert len(quick_start) >= 2, "the quick start installs, then serves"

    port, s3_port = free_port(), free_port()
    env = shell_environment(
        UV_PROJECT_ENVIRONMENT=str(shared_environments / environment_key(answers)),
        PORT=str(port),
        S3_DEV_PORT=str(s3_port),
    )
    for command in quick_start[:-1]:
        argv = shlex.split(command.text, comments=True)
        run_step(argv, project, env, shlex.join(argv), record_suite_run, name)

    serve = shlex.split(quick_start[-1].text, comments=True)
    started = time.perf_counter()
    with serving(serve, project, env, port) as log:
        ready = time.perf_counter() - started
        record_suite_run.append(SuiteRun(name, f"{shlex.join(serve)}: serving", True, ready))
        started = time.perf_counter()
        run_first_requests(requests, port, project, tmp_path, log, name)
        record_suite_run.append(
            SuiteRun(name, "first requests", True, time.perf_counter() - started)
        )
    for open_port in (port, s3_port):
        assert not port_is_open(open_port), f"[{name}] port {open_port} still served after Ctrl-C"


# What .env holds for `make up` ---------------------------------------------------------


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation, for the forms docker-compose.yml uses: `$$`, and
    `${...}` with `:-`, `:?` or `:+`, nested ones first."""

    def substitute(match: re.Match[str]) -> str:
        name, op, argument = match.group("name"), match.group("op"), match.group("arg")
        current = env.get(name)
        unset = current is None or (current == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return argument if unset else str(current)
        if op in (":?", "?"):
            assert not unset, f"compose refuses to start: {argument}"
        if op in (":+", "+"):
            return "" if unset else argument
        return current or ""

    text = value.replace("$$", ESCAPED_DOLLAR)
    while (substituted := INTERPOLATION.sub(substitute, text)) != text:
        text = substituted
    return text.replace(ESCAPED_DOLLAR, "$")


def env_block(readme: str, marker: str = "compose-env") -> dict[str, str]:
    settings = {}
    for line in fenced_block(readme, marker).splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def production_guard(
    project: Path, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """The service's settings, built from `env` alone (the image has no .env file)."""
    check = (
        "import app, sys; from app.core.config import Settings; Settings(); "
        f"sys.exit(0 if app.__file__.startswith({str(project)!r}) else 'app from elsewhere')"
    )
    return subprocess.run(
        [sys.executable, "-c", check],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(project), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("answers", matrix.suite_variants(), ids=variant_name)
def test_the_env_the_readme_asks_for_passes_the_production_guard(
    answers: dict[str, Any], rendered_variant: Callable[[dict[str, Any]], Path], tmp_path: Path
) -> None:
    project = rendered_variant(answers)
    readme = readme_of(project)
    asked = env_block(readme)
    dotenv = {key: value or "" for key, value in dotenv_values(project / ".env").items()}
    env_file = {**dotenv, **asked}  # .env once the README's lines are added
    compose = yaml.safe_load((project / "docker-compose.yml").read_text())
    app_environment = compose["services"]["app"]["environment"]
    environment = {key: interpolate(str(value), env_file) for key, value in app_environment.items()}
    # What the container sees: env_file, then `environment:` on top.
    container = {**env_file, **environment}
    assert container["ENVIRONMENT"] == "production"

    allowed = production_guard(project, container, tmp_path)
    assert allowed.returncode == 0, f"[{variant_name(answers)}] {allowed.stderr[-3000:]}"

    # And the block is what it takes: without it, the guard refuses.
    bare = {**dotenv, **{key: interpolate(str(v), dotenv) for key, v in app_environment.items()}}
    refused = production_guard(project, bare, tmp_path)
    assert refused.returncode != 0, f"[{variant_name(answers)}] the README asks for nothing needed"
    assert "insecure production settings" in refused.stderr, refused.stderr[-3000:]


@pytest.mark.parametrize(
    "answers",
    [answers for answers in matrix.suite_variants() if answers["storage_backend"] == "s3"],
    ids=variant_name,
)
def test_the_stacks_own_s3_is_the_one_the_readme_names(
    answers: dict[str, Any], rendered_variant: Callable[[dict[str, Any]], Path], tmp_path: Path
) -> None:
    """The README's self-contained option turns on a service of docker-compose.yml that
    serves the endpoint it names and creates the bucket the app uses."""
    project = rendered_variant(answers)
    readme = readme_of(project)
    own = env_block(readme, "compose-env-own-s3")
    dotenv = {key: value or "" for key, value in dotenv_values(project / ".env").items()}
    env_file = {**dotenv, **env_block(readme), **own}
    services = yaml.safe_load((project / "docker-compose.yml").read_text())["services"]
    endpoint = httpx.URL(own["STORAGE_S3_ENDPOINT_URL"])
    service = services[endpoint.host]
    assert own["COMPOSE_PROFILES"] in service["profiles"]
    assert service["build"] == {"context": ".", "dockerfile": "deploy/local-s3/Dockerfile"}
    dockerfile = (project / "deploy/local-s3/Dockerfile").read_text()
    assert f'--port", "{endpoint.port}"' in dockerfile, "the server listens elsewhere"
    command = [interpolate(str(argument), env_file) for argument in service["command"]]
    assert command[command.index("--bucket") + 1] == env_file["STORAGE_S3_BUCKET"]
    assert command[command.index("--region") + 1] == env_file["STORAGE_S3_REGION"]
    app = services["app"]["environment"]
    container = {**env_file, **{key: interpolate(str(v), env_file) for key, v in app.items()}}
    assert production_guard(project, container, tmp_path).returncode == 0


@pytest.mark.parametrize("answers", matrix.suite_variants(), ids=variant_name)
def test_the_stacks_read_replica_is_the_one_the_readme_names(
    answers: dict[str, Any], rendered_variant: Callable[[dict[str, Any]], Path], tmp_path: Path
) -> None:
    """The README's read-replica block turns on a streaming standby of the stack's
    postgres and points the app's DATABASE_REPLICA_URLS at it, in settings the production
    guard accepts; without the block the app has no replica."""
    project = rendered_variant(answers)
    readme = readme_of(project)
    own = env_block(readme, "compose-env-read-replica")
    dotenv = {key: value or "" for key, value in dotenv_values(project / ".env").items()}
    env_file = {**dotenv, **env_block(readme), **own}
    services = yaml.safe_load((project / "docker-compose.yml").read_text())["services"]
    standby = services[own["READ_REPLICA"]]
    assert own["COMPOSE_PROFILES"] in standby["profiles"]
    assert "pg_basebackup -h postgres " in standby["command"][-1]
    app = services["app"]["environment"]
    container = {**env_file, **{key: interpolate(str(v), env_file) for key, v in app.items()}}
    # The primary's URL, on the standby's host.
    standby_url = container["DATABASE_URL"].replace("@postgres:", f"@{own['READ_REPLICA']}:")
    assert json.loads(container["DATABASE_REPLICA_URLS"]) == [standby_url]
    allowed = production_guard(project, container, tmp_path)
    assert allowed.returncode == 0, f"[{variant_name(answers)}] {allowed.stderr[-3000:]}"

    without = {**dotenv, **env_block(readme)}
    assert interpolate(str(app["DATABASE_REPLICA_URLS"]), without) == ""


# What each variant's README names ----------------------------------------------------

# Words that name the other deployment's files and commands.
FOREIGN_WORDS = {
    "kubernetes": ("compose", "make up", "up-dev", "rollout", "deploy/nginx"),
    "compose": ("kube", "ingress", "httproute"),
    "both": (),
}
# Files the README tells the user to create (the TLS certificate and key).
USER_MADE = ("deploy/nginx/certs/",)
# Where the Kubernetes section's relative paths (`app/ingress.yaml`) are.
KUBERNETES_DIR = "deploy/kubernetes"


@pytest.mark.parametrize("deployment", matrix.toggles()["deployment"])
def test_each_readme_names_only_what_its_variant_has(
    deployment: str, rendered_variant: Callable[[dict[str, Any]], Path]
) -> None:
    """Every `make` target the README names is in the Makefile, every file it names is in
    the render, and it never names the other deployment's commands or files."""
    answers = {
        **matrix.defaults(),
        "deployment": deployment,
        "storage_backend": "s3",
        "email_provider": "api",
    }
    project = rendered_variant(answers)
    readme = readme_of(project)
    makefile = (project / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    named = set(re.findall(r"(?:^|`)make ([a-z][a-z-]*)", readme, flags=re.M))
    assert named, "the README names no make target"
    assert named - targets == set(), f"[{deployment}] the README names missing make targets"
    paths = set(re.findall(r"`((?:app|alembic|deploy|tests|config)/[^`\s]*)`", readme))
    missing = {
        path
        for path in paths
        if not path.startswith(USER_MADE)
        and not (project / path).exists()
        and not (project / KUBERNETES_DIR / path).exists()
    }
    assert missing == set(), f"[{deployment}] the README names files the render lacks"
    lowered = readme.lower()
    foreign = [word for word in FOREIGN_WORDS[deployment] if word in lowered]
    assert foreign == [], f"[{deployment}] the README names what this variant lacks"


# `make up-dev` ------------------------------------------------------------------------

UP_DEV_ANSWERS = {"storage_backend": "s3", "email_provider": "api", "token_transport": "cookie"}
UP_DEV_PORTS = (
    "APP_DEV_PORT", "POSTGRES_DEV_PORT", "REDIS_DEV_PORT", "S3_DEV_PORT", "HTTP_PORT", "HTTPS_PORT"
)  # fmt: skip
# Building the app's and the S3 server's images, then starting the stack.
UP_DEV_READY_SECONDS = 900


def postgres_answers(port: int) -> bool:
    """A PostgreSQL server answers on the port: it replies to an SSLRequest (RFC-less but
    documented: PostgreSQL protocol, "SSL Session Encryption") with one byte, S or N."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
        return sock.recv(1) in (b"S", b"N")


def redis_answers(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(7) == b"+PONG\r\n"


def locked_version(project: Path, package: str) -> str:
    lock = tomllib.loads((project / "uv.lock").read_text())
    [version] = [entry["version"] for entry in lock["package"] if entry["name"] == package]
    return str(version)


@pytest.mark.slow
def test_make_up_dev_keeps_the_readmes_promises(
    template_repo: Path, tmp_path: Path, record_suite_run: list[SuiteRun]
) -> None:
    """`make up-dev` with `.env` as the README's Docker Compose section leaves it (the email
    API's key included) serves the README's first requests as documented, the download
    following its link to the stack's S3 from this host; email goes to the log, not to the
    API; PostgreSQL and Redis answer on their published ports; the S3 image's moto is the
    one uv.lock pins. The stack runs in the foreground and stops on Ctrl-C, as the README
    says; it, its volumes and its images are removed whatever happens."""
    docker = containers.engine()
    slug = f"updev-{uuid.uuid4().hex[:8]}"
    name = f"readme:up-dev:{variant_name(UP_DEV_ANSWERS)}"
    project = render(template_repo, tmp_path / "svc", {**UP_DEV_ANSWERS, "project_slug": slug})
    readme = readme_of(project)
    with (project / ".env").open("a") as env_file:
        for marker in ("compose-env", "compose-env-own-s3"):
            env_file.write("".join(f"{k}={v}\n" for k, v in env_block(readme, marker).items()))
    containers.stand_ins(containers.compose_images(project / "docker-compose.yml"))
    ports = {variable: free_port() for variable in UP_DEV_PORTS}
    subnet = containers.edge_subnet(docker)
    # This host's choices, from the environment (as a shell's would be): a project name of
    # this run's, free ports on loopback, an edge network no other stack uses.
    choices = {
        **{variable: str(port) for variable, port in ports.items()},
        "COMPOSE_PROJECT_NAME": slug,
        "PUBLISH_ADDRESS": "127.0.0.1",
        "EDGE_SUBNET": str(subnet),
        "EDGE_NGINX_ADDRESS": str(subnet[254]),
        "PATH": f"{Path(docker).parent}:{os.environ.get('PATH', '')}",
    }
    compose = containers.Compose(
        docker,
        project,
        name=slug,
        files=[project / "docker-compose.yml", project / "docker-compose.override.yml"],
        env={**choices, "COMPOSE_PROFILES": "s3"},
    )
    make = shutil.which("make")
    assert make, "make is needed: the test runs the README's `make up-dev`"
    requests = commands(fenced_block(readme, "first-requests"))
    try:
        started = time.perf_counter()
        up_dev = [make, "up-dev"]
        with serving(
            up_dev, project, shell_environment(**choices), ports["APP_DEV_PORT"],
            ready=UP_DEV_READY_SECONDS,
        ) as log:  # fmt: skip
            record_suite_run.append(
                SuiteRun(name, "make up-dev: serving", True, time.perf_counter() - started)
            )
            run_first_requests(requests, ports["APP_DEV_PORT"], project, tmp_path, log, name)
            assert postgres_answers(ports["POSTGRES_DEV_PORT"]), "PostgreSQL is not published"
            assert redis_answers(ports["REDIS_DEV_PORT"]), "Redis is not published"
            # The workers send the outbox's email (README.md, "Background work").
            sent_by = compose.run("logs", "app", "worker")
            assert "email_logged_not_sent" in sent_by, sent_by[-4000:]
            assert "email_delivery_failed" not in sent_by, sent_by[-4000:]
        moto = subprocess.run(
            [docker, "run", "--rm", "--entrypoint", "python", f"{slug}-s3:latest",
             "-c", "import moto; print(moto.__version__)"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert moto.stdout.strip() == locked_version(project, "moto"), moto.stderr
    finally:
        compose.down()
        images = [f"{slug}:latest", f"{slug}-s3:latest"]
        subprocess.run(
            [docker, "image", "rm", "--force", *images], capture_output=True, check=False
        )
