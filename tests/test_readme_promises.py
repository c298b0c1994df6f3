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
  a `<name>` in a command stands for that field of an earlier answer.
- `<!-- compose-env -->`: what to add to `.env` before `make up`. The generated `.env`, the
  block, and the app's `environment:` in docker-compose.yml (interpolated from them, as
  Compose does) must satisfy the variant's production guard (`Settings()` with that
  environment and no `.env` file, as in the image), and the guard must refuse the same
  environment without the block. No container runs.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jinja2
import pytest
import yaml
from dotenv import dotenv_values

from tests import matrix
from tests.conftest import REPO_ROOT
from tests.rendering import SuiteRun, variant_name

LOCAL_ADDRESS = "127.0.0.1:8000"
READY_SECONDS = 120
STOP_SECONDS = 30
# Not copied from a shared render: what other tests' runs may have left in it.
LEFTOVERS = shutil.ignore_patterns(
    ".venv", "*.db", "var", ".ruff_cache", ".mypy_cache", ".pytest_cache", "__pycache__"
)
EXPECTATION = re.compile(r"^# (?P<status>\d{3})\b(?:\s*\{(?P<fields>[^}]*)\})?")
PLACEHOLDER = re.compile(r"<([a-z_]+)>")
# Compose's interpolation: ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, $$.
INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


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
def serving(command: list[str], cwd: Path, env: dict[str, str], port: int) -> Iterator[Path]:
    """Run the serving command in its own process group until /health/live answers; on
    exit, Ctrl-C it (SIGINT to the group), as a developer would. Yields its log."""
    log = cwd.parent / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            assert process.poll() is None, f"`{shlex.join(command)}` exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, (
                f"not serving after {READY_SECONDS} s:\n{log.read_text()}"
            )
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


def run_request(
    command: Command, port: int, values: dict[str, str], cwd: Path, body: Path
) -> tuple[int, bytes]:
    text = command.text
    assert LOCAL_ADDRESS in text, f"the request does not go to {LOCAL_ADDRESS}: {text}"
    text = text.replace(LOCAL_ADDRESS, f"127.0.0.1:{port}")
    missing = sorted(set(PLACEHOLDER.findall(text)) - set(values))
    assert not missing, f"no earlier answer has {missing} for `{command.text}`"
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
        values: dict[str, str] = {}
        for number, command in enumerate(requests):
            status, fields = expected(command)
            answered, content = run_request(
                command, port, values, project, tmp_path / f"answer-{number}"
            )
            where = f"[{name}] `{command.text}` ({command.comment})"
            assert answered == status, (
                f"{where}: {answered} {content[:2000]!r}\n{log.read_text()[-4000:]}"
            )
            answer = remember(values, content)
            if fields is not None:
                assert answer is not None, f"{where}: not a JSON object: {content[:500]!r}"
                assert set(answer) == fields, f"{where}: answered {sorted(answer)}"
        record_suite_run.append(
            SuiteRun(name, "first requests", True, time.perf_counter() - started)
        )
    for open_port in (port, s3_port):
        assert not port_is_open(open_port), f"[{name}] port {open_port} still served after Ctrl-C"


# What .env holds for `make up` ---------------------------------------------------------


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation, for the forms docker-compose.yml uses."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, argument = match.group("name"), match.group("op"), match.group("arg")
        current = env.get(name)
        unset = current is None or (current == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return argument if unset else str(current)
        if op in (":?", "?"):
            assert not unset, f"compose refuses to start: {argument}"
        return current or ""

    return INTERPOLATION.sub(substitute, value)


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
    assert service["build"] == "./deploy/local-s3"
    dockerfile = (project / "deploy/local-s3/Dockerfile").read_text()
    assert f'--port", "{endpoint.port}"' in dockerfile, "the server listens elsewhere"
    command = [interpolate(str(argument), env_file) for argument in service["command"]]
    assert command[command.index("--bucket") + 1] == env_file["STORAGE_S3_BUCKET"]
    assert command[command.index("--region") + 1] == env_file["STORAGE_S3_REGION"]
    app = services["app"]["environment"]
    container = {**env_file, **{key: interpolate(str(v), env_file) for key, v in app.items()}}
    assert production_guard(project, container, tmp_path).returncode == 0
