"""Each offered `python_version` is proven on that Python where this machine can provide
it: the host's interpreter for 3.11 (tests/test_variants.py), Debian's python3.13 (trixie)
and python3.14 (forky) in debootstrapped chroots (tests/debian_env.py). Inside a chroot the
default variant, rendered for that version, is installed with uv on the chroot's interpreter
and runs its own `make lint`, `make typecheck` and `make test` on the host's PostgreSQL and
Redis (TEST_DATABASE_URL / TEST_REDIS_URL; the chroot shares the host's network), and the
newest version's also on SQLite. A version no Debian suite carries (3.12) runs the same
pipeline on an interpreter the host has (pyenv's, tests/host_pythons.py); where it has none,
it is rendered, installed and checked (lint, types) in the chroot of the next version up
(CHECKED_ON), its suites not run.

The service's image is built and run for each version a base image can be had for here:
the python and uv stand-ins the Dockerfile's stages name (python:X.Y-slim-bookworm,
ghcr.io/astral-sh/uv:pythonX.Y-bookworm-slim) are made from the same chroot trees
(`scripts/stand-in-images --python`), the image is built with BuildKit and run as the
orchestrator would (read-only root, no capabilities, its own uid 10001) on the host's
PostgreSQL and Redis: migrations, then /health/live, /health/ready and register, login,
/users/me. 3.11's image is tests/test_real_stack.py's; 3.12 has no base image here.

The end of the run prints python_version x (install, lint, types, suite on SQLite, suite on
PostgreSQL+Redis) and python_version x (stand-ins, image build, image run) with pass/fail
and seconds. Skipped, with the reason, where debootstrap, root or chroot are unavailable
(.ci/run provides them), and the images where no container engine can be had.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests import containers, debian_env, host_pythons, matrix
from tests.conftest import summary_sections
from tests.rendering import READ_REPLICA_TESTS, render

HOST_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# Offered, but carried by no Debian suite this machine can install: rendered, installed and
# checked (ruff, ruff format, mypy targeting that version, import contracts) on the nearest
# newer interpreter a chroot has (the host's 3.11 cannot even parse 3.12's syntax, PEP 695);
# its suites need its own interpreter and are not run.
CHECKED_ON = {"3.12": "3.13"}
CELLS = ("install", "lint", "types", "suite on SQLite", "suite on PostgreSQL+Redis")
IMAGE_CELLS = ("stand-ins", "image build", "image run")
# Mount points inside the chroot, unique to this process and version: runs from other
# checkouts may share the cached tree at the same time, and so do two versions of this run
# (3.12 is checked in 3.13's tree).


def service_dir(version: str) -> str:
    return f"/srv/svc-{os.getpid()}-{version}"


def mypy_cache_dir(version: str) -> str:
    return f"/var/cache/mypy-{os.getpid()}-{version}"


PRINT_INTERPRETER = (
    "uv run --no-sync python -c 'import sys; print(sys.version_info[:2], sys.prefix)'"
)


def offered_versions() -> list[str]:
    return [str(version) for version in matrix.choice_values(matrix.questions()["python_version"])]


def debian_versions() -> list[str]:
    return [version for version in offered_versions() if version in debian_env.PYTHON_SUITES]


# Offered versions no Debian suite carries that the host itself has an interpreter of.
HOST_PYTHONS = {
    version: interpreter
    for version in offered_versions()
    if version != HOST_PYTHON and version not in debian_env.PYTHON_SUITES
    if (interpreter := host_pythons.find(version)) is not None
}


def suite_versions() -> list[str]:
    """Every version whose suites run here, on its own interpreter (the host's aside)."""
    return [*debian_versions(), *HOST_PYTHONS]


def sqlite_suite_versions() -> list[str]:
    """The versions whose suite also runs on SQLite: the newest only. SQLite's driver is the
    standard library's, whose changes land in the newest Python; the production backends
    (PostgreSQL and Redis) are run on every version. 3.11's runs in tests/test_variants.py."""
    versions = suite_versions()
    return [max(versions, key=lambda v: tuple(map(int, v.split("."))))] if versions else []


def checked_only_versions() -> list[str]:
    return [v for v in offered_versions() if v in CHECKED_ON and v not in HOST_PYTHONS]


def checked_versions() -> list[str]:
    """Every version whose render is installed and checked in a chroot or on the host."""
    return [*suite_versions(), *checked_only_versions()]


Place = debian_env.DebianEnv | host_pythons.HostPython


def uv_python(version: str, place: Place) -> str:
    """The interpreter `version`'s pipeline installs on, as `place` sees it."""
    if isinstance(place, host_pythons.HostPython):
        return place.python()
    return f"/usr/bin/python{CHECKED_ON.get(version, version)}"


@dataclass
class Cell:
    ok: bool
    seconds: float
    note: str = ""


@dataclass
class Table:
    """python_version -> cell name -> result; printed at the end of the run."""

    title: str = "python versions (Debian chroots)"
    cells: tuple[str, ...] = CELLS
    rows: dict[str, dict[str, Cell]] = field(default_factory=dict)
    environments: list[str] = field(default_factory=list)

    def record(self, version: str, cell: str, result: Cell) -> None:
        self.rows.setdefault(version, {})[cell] = result

    def lines(self) -> list[str]:
        lines = list(self.environments)
        width = 17
        header = f"{'python_version':<15}" + "".join(f"{cell:>{width + 10}}" for cell in self.cells)
        lines.append(header)
        for version, cells in sorted(self.rows.items()):
            line = f"{version:<15}"
            for cell in self.cells:
                result = cells.get(cell)
                if result is None:
                    text = "not run"
                elif result.note:
                    text = result.note
                else:
                    text = f"{'ok' if result.ok else 'FAILED'} {result.seconds:6.1f} s"
                line += f"{text:>{width + 10}}"
            lines.append(line)
        return lines


@pytest.fixture(scope="session")
def version_table() -> Iterator[Table]:
    table = Table()
    yield table
    if table.rows or table.environments:
        summary_sections[table.title] = table.lines()


@pytest.fixture(scope="session")
def image_table() -> Iterator[Table]:
    table = Table("python versions (service images)", IMAGE_CELLS)
    for version in offered_versions():
        if version == HOST_PYTHON:
            why = "real-stack test"
        elif version not in debian_env.PYTHON_SUITES:
            why = f"no Debian python{version}"
        else:
            continue
        for cell in IMAGE_CELLS:
            table.record(version, cell, Cell(False, 0.0, why))
    yield table
    summary_sections[table.title] = table.lines()


class Renders:
    """The default variant rendered for a python_version, once per run: the chroot runs
    and the image builds share it (the image's context is only what .dockerignore lets
    through, so the chroot's .venv never reaches it).

    The copy writes uv.lock with an interpreter of that version from the host; where the
    host has none (3.14), the copy says to run `uv lock` where one is installed, and that
    is done here in the version's chroot: installs and the image build are `--locked`."""

    def __init__(
        self,
        template: Path,
        tmp_path_factory: pytest.TempPathFactory,
        places: dict[str, Place],
        table: Table,
    ) -> None:
        self.template, self.tmp_path_factory = template, tmp_path_factory
        self.places, self.table = places, table
        self.projects: dict[str, Path] = {}

    def __call__(self, version: str) -> Path:
        if version not in self.projects:
            destination = self.tmp_path_factory.mktemp(f"python{version}") / "svc"
            project = render(self.template, destination, {"python_version": version})
            if not (project / "uv.lock").is_file():
                self.lock(version, project)
            self.projects[version] = project
        return self.projects[version]

    def lock(self, version: str, project: Path) -> None:
        env = self.places[version]
        with env.session({project: service_dir(version)}) as chroot:
            result = chroot.run(
                "uv lock", cwd=service_dir(version), env={"UV_PYTHON": uv_python(version, env)}
            )
        assert result.ok, f"[python {version}] `uv lock` in {env.suite} failed\n{result.output}"
        self.table.environments.append(
            f"{version}: uv.lock written in {env.suite} ({result.seconds:.1f} s): none on the host"
        )


@pytest.fixture(scope="session")
def version_renders(
    template_repo: Path,
    tmp_path_factory: pytest.TempPathFactory,
    places: dict[str, Place],
    version_table: Table,
) -> Renders:
    return Renders(template_repo, tmp_path_factory, places, version_table)


@pytest.fixture(scope="session")
def debian_envs(version_table: Table) -> dict[str, debian_env.DebianEnv]:
    """Every chroot the offered versions need, built (in parallel) or reused from the cache."""
    reason = debian_env.unavailable_reason()
    if reason:
        pytest.skip(f"Debian chroots unavailable: {reason}")
    envs = {version: debian_env.python_env(version) for version in debian_versions()}

    def ensure(env: debian_env.DebianEnv) -> str:
        seconds = env.ensure()
        how = f"built in {seconds:.0f} s" if seconds else "reused"
        return f"{env.suite}: {env.rootfs} ({how}, {env.size_bytes() / 2**20:.0f} MiB)"

    with ThreadPoolExecutor(max_workers=len(envs) or 1) as pool:
        version_table.environments += list(pool.map(ensure, envs.values()))
    return envs


@pytest.fixture(scope="session")
def places(debian_envs: dict[str, debian_env.DebianEnv], version_table: Table) -> dict[str, Place]:
    """Where each checked version's pipeline runs: its chroot, the host's interpreter, or
    the chroot of CHECKED_ON's version."""
    found: dict[str, Place] = {
        version: host_pythons.HostPython(version, interpreter)
        for version, interpreter in HOST_PYTHONS.items()
    }
    version_table.environments += [f"{v}: {place.suite}" for v, place in found.items()]
    for version in checked_versions():
        found.setdefault(version, debian_envs[CHECKED_ON.get(version, version)])
    return found


@dataclass
class Step:
    """One step of a version's pipeline: its cell in the table, and what it printed."""

    cell: str
    script: str
    ok: bool
    seconds: float
    output: str


STEPS = (
    ("install", "uv sync --locked"),
    ("interpreter", PRINT_INTERPRETER),
    ("lint", "make lint"),
    ("types", "make typecheck"),
    ("suite on SQLite", "uv run --no-sync pytest -p no:cacheprovider -rs"),
    # The chroots have no PostgreSQL server programs: the read replica tests, which need
    # them, run in the host's suites (tests/test_variants.py).
    (
        "suite on PostgreSQL+Redis",
        f"uv run --no-sync pytest -p no:cacheprovider -rs --deselect={READ_REPLICA_TESTS}",
    ),
)


def run_version(version: str, env: Place, project: Path, table: Table) -> dict[str, Step]:
    """Install the rendered service on the chroot's (or the host's) Python, then run each
    check in turn (every check runs, whatever the others gave; nothing runs if the install
    fails). A version of CHECKED_ON runs on the newer interpreter, without its suites."""
    mypy_cache = env.cache_root / f"mypy-cache-{version}"  # warm across runs
    mypy_cache.mkdir(parents=True, exist_ok=True)
    settings = {
        "UV_PYTHON": uv_python(version, env),
        "MYPY_CACHE_DIR": mypy_cache_dir(version),
    }
    services = {
        "TEST_DATABASE_URL": os.environ.get("TEST_DATABASE_URL", ""),
        "TEST_REDIS_URL": os.environ.get("TEST_REDIS_URL", ""),
    }
    steps: dict[str, Step] = {}
    with env.session(
        {project: service_dir(version), mypy_cache: mypy_cache_dir(version)}
    ) as chroot:
        for cell, script in STEPS:
            if cell.startswith("suite") and version in checked_only_versions():
                table.record(version, cell, Cell(False, 0.0, f"no {version} here"))
                continue
            if cell == "suite on SQLite" and version not in sqlite_suite_versions():
                table.record(version, cell, Cell(False, 0.0, "newest only"))
                continue
            if cell == "suite on PostgreSQL+Redis" and not all(services.values()):
                table.record(version, cell, Cell(False, 0.0, "no URLs"))
                continue
            extra = {**settings, **(services if cell == "suite on PostgreSQL+Redis" else {})}
            result = chroot.run(script, cwd=service_dir(version), env=extra)
            steps[cell] = Step(cell, script, result.ok, result.seconds, result.output)
            table.record(version, cell, Cell(result.ok, result.seconds))
            if cell == "install" and not result.ok:
                break
    return steps


@pytest.fixture(scope="session")
def version_runs(
    places: dict[str, Place],
    version_renders: Renders,
    version_table: Table,
) -> dict[str, dict[str, Step]]:
    """Every checked version's pipeline, the versions side by side (one session each): CI
    runs the template's tests on one core, this uses the other."""
    projects = {version: version_renders(version) for version in checked_versions()}
    with ThreadPoolExecutor(max_workers=max(len(projects), 1)) as pool:
        futures = {
            version: pool.submit(run_version, version, places[version], project, version_table)
            for version, project in projects.items()
        }
        return {version: future.result() for version, future in futures.items()}


def step_of(runs: dict[str, dict[str, Step]], version: str, cell: str) -> Step:
    """The step's result; fails with its output (and the command) unless it passed."""
    steps = runs[version]
    if cell not in steps:
        install = steps["install"]
        pytest.fail(f"[python {version}] not run: the install failed\n{install.output[-12000:]}")
    step = steps[cell]
    assert step.ok, f"[python {version}] {cell}: `{step.script}` failed\n{step.output[-12000:]}"
    return step


def test_every_offered_version_is_run_or_checked_on_another() -> None:
    """A new python_version choice must say where its suite runs, or where it is checked."""
    unplaced = [
        version
        for version in offered_versions()
        if version != HOST_PYTHON
        and version not in suite_versions()
        and CHECKED_ON.get(version) not in debian_env.PYTHON_SUITES
    ]
    assert unplaced == [], "add to debian_env.PYTHON_SUITES or CHECKED_ON"


@pytest.mark.slow
@pytest.mark.parametrize("version", checked_versions())
def test_install_on_the_chroots_interpreter(
    version_runs: dict[str, dict[str, Step]], version: str
) -> None:
    step_of(version_runs, version, "install")
    output = step_of(version_runs, version, "interpreter").output
    runs_on = version if version in suite_versions() else CHECKED_ON[version]
    major, minor = runs_on.split(".")
    assert f"({major}, {minor}) {service_dir(version)}/.venv" in output


@pytest.mark.slow
@pytest.mark.parametrize("version", checked_versions())
def test_lint(version_runs: dict[str, dict[str, Step]], version: str) -> None:
    step_of(version_runs, version, "lint")


@pytest.mark.slow
@pytest.mark.parametrize("version", checked_versions())
def test_types(version_runs: dict[str, dict[str, Step]], version: str) -> None:
    step_of(version_runs, version, "types")


@pytest.mark.slow
@pytest.mark.parametrize("version", sqlite_suite_versions())
def test_suite_on_sqlite(version_runs: dict[str, dict[str, Step]], version: str) -> None:
    output = step_of(version_runs, version, "suite on SQLite").output
    assert "backends: database=sqlite cache=memory" in output
    assert " passed" in output


@pytest.mark.slow
@pytest.mark.parametrize("version", suite_versions())
def test_suite_on_postgres_and_redis(
    version_runs: dict[str, dict[str, Step]], version: str
) -> None:
    if not (os.environ.get("TEST_DATABASE_URL") and os.environ.get("TEST_REDIS_URL")):
        pytest.skip("set TEST_DATABASE_URL and TEST_REDIS_URL (the host's services)")
    output = step_of(version_runs, version, "suite on PostgreSQL+Redis").output
    assert "backends: database=postgresql cache=redis" in output
    assert " passed" in output
    assert "skipped" not in output, "tests skipped on real services"


def test_environment_key_follows_suite_mirror_and_packages() -> None:
    """A changed package list or mirror is a new tree; the order of the list is not."""
    env = debian_env.DebianEnv("trixie", ("python3.13", "make"), mirror="http://a/debian")
    assert env.key == debian_env.DebianEnv("trixie", ("make", "python3.13"), env.mirror).key
    others = [
        debian_env.DebianEnv("forky", env.packages, env.mirror),
        debian_env.DebianEnv("trixie", ("python3.13",), env.mirror),
        debian_env.DebianEnv("trixie", env.packages, "http://b/debian"),
    ]
    assert len({env.key, *(other.key for other in others)}) == 4


def test_a_failing_session_leaves_nothing_mounted(
    debian_envs: dict[str, debian_env.DebianEnv], tmp_path: Path
) -> None:
    env = next(iter(debian_envs.values()))
    (tmp_path / "marker").write_text("from the host\n")
    target = f"/srv/probe-{os.getpid()}"
    before = debian_env._mounts_under(env.rootfs)

    def fail_inside() -> None:
        with env.session({tmp_path: target}) as chroot:
            seen = chroot.run(f"cat {target}/marker && test -r /proc/self/status && ls /dev/null")
            assert seen.ok, seen.output
            assert "from the host" in seen.output
            raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        fail_inside()
    assert debian_env._mounts_under(env.rootfs) == before


# The service's image on each version's stand-in base images.

API = "/api/v1"
PASSWORD = "correct horse battery staple"
# What the container is given besides the database and cache: production's guard is
# satisfied as it must be. Production insists on a mail server: a closed local port, so the
# welcome mail fails fast in the background (and is logged).
IMAGE_SETTINGS = {
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": "9",
    "SMTP_SECURITY": "none",
    "PUBLIC_URL": "https://localhost",  # production refuses plain-HTTP links
    "WEB_CONCURRENCY": "1",
    "LOG_JSON": "true",
    "PROMETHEUS_MULTIPROC_DIR": "/run/metrics",
}


def image_versions() -> list[Any]:
    """Every offered version but the host's (tests/test_real_stack.py builds that one); a
    version no Debian suite carries is skipped, saying why."""
    return [
        version
        if version in debian_env.PYTHON_SUITES
        else pytest.param(
            version,
            marks=pytest.mark.skip(
                reason=f"no base image for Python {version} here: no Debian suite carries"
                f" python{version}, so no stand-in for python:{version}-slim-bookworm"
                " can be built"
            ),
        )
        for version in offered_versions()
        if version != HOST_PYTHON
    ]


@pytest.fixture(scope="session")
def docker() -> str:
    if not (os.environ.get("TEST_DATABASE_URL") and os.environ.get("TEST_REDIS_URL")):
        pytest.skip(
            "the image runs on the host's services: set TEST_DATABASE_URL and TEST_REDIS_URL"
        )
    return containers.engine()


@contextlib.contextmanager
def database(server_url: str, name: str) -> Iterator[str]:
    """A fresh PostgreSQL database `name` on TEST_DATABASE_URL's server; its URL."""
    admin = server_url.replace("+asyncpg", "").rsplit("/", 1)[0] + "/postgres"
    subprocess.run(["psql", admin, "-qc", f'CREATE DATABASE "{name}"'], check=True)
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        subprocess.run(
            ["psql", admin, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=False
        )


def serving_command(command: list[str], port: int) -> list[str]:
    """The image's CMD, listening on 127.0.0.1:`port` (the container shares the host's
    network, where the test's PostgreSQL and Redis listen on loopback only)."""
    served = list(command)
    for option in ("--host", "--port"):
        assert option in served, served
    served[served.index("--host") + 1] = "127.0.0.1"
    served[served.index("--port") + 1] = str(port)
    return served


def wait_until_live(docker: str, container: str, url: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        state = containers._run([docker, "inspect", "--format", "{{.State.Status}}", container])
        if state.stdout.strip() != "running" or time.monotonic() > deadline:
            logs = containers._run([docker, "logs", container]).stderr
            raise AssertionError(f"{url} never answered ({state.stdout.strip()}):\n{logs[-6000:]}")
        time.sleep(0.5)


def run_image(docker: str, image: str, version: str, work: Path) -> None:
    """Migrate and serve `image` as production runs it, then ask it the health checks and
    one user journey; every container, the database and the cache keys are removed."""
    server_url = os.environ["TEST_DATABASE_URL"]
    redis_url = os.environ["TEST_REDIS_URL"]
    run_id = uuid.uuid4().hex[:10]
    prefix = f"pyimage-{run_id}:"
    container = f"pyimage-{version.replace('.', '')}-{run_id}"
    port = containers.free_port()
    with database(server_url, f"pyimage_{version.replace('.', '')}_{run_id}") as database_url:
        env_file = work / f"{container}.env"
        settings = {
            **IMAGE_SETTINGS,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": prefix,
        }
        env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        # As the compose file runs it: nothing writable but tmpfs, no capabilities, the
        # image's own user (not set here: the Dockerfile's USER must make it 10001).
        confined = [
            "--network", "host", "--read-only", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges:true",
            "--tmpfs", "/tmp", "--tmpfs", "/run/metrics",
            "--env-file", str(env_file),
        ]  # fmt: skip
        try:
            migrate = containers._run(
                [docker, "run", "--rm", *confined, image,
                 "sh", "-c", "alembic upgrade head && python -m app.cli seed"],
                timeout=300,
            )  # fmt: skip
            assert migrate.returncode == 0, f"migrations failed:\n{migrate.stderr[-6000:]}"
            started = containers._run(
                [docker, "run", "--detach", "--name", container, *confined,
                 "--tmpfs", "/run/metrics",
                 "--tmpfs", "/app/var/uploads:uid=10001,gid=10001",
                 image, *serving_command(containers.image_command(docker, image), port)],
                timeout=120,
            )  # fmt: skip
            assert started.returncode == 0, started.stderr
            base_url = f"http://127.0.0.1:{port}"
            wait_until_live(docker, container, f"{base_url}/health/live")
            check_container(docker, container, version)
            check_answers(base_url)
        finally:
            containers._run([docker, "rm", "--force", container], timeout=60)
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=f"{prefix}*", count=500))
            if keys:
                client.delete(*keys)
            client.close()


def check_container(docker: str, container: str, version: str) -> None:
    """Unprivileged, read-only, and on `version`'s interpreter (the venv the build made)."""
    state = containers._run([docker, "inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}",
                             container])  # fmt: skip
    assert state.stdout.strip() == "true"

    def inside(*command: str) -> subprocess.CompletedProcess[str]:
        return containers._run([docker, "exec", container, *command], timeout=60)

    assert inside("id", "-u").stdout.strip() == "10001"
    written = inside("touch", "/app/anything")
    assert written.returncode != 0
    assert "Read-only file system" in written.stderr
    interpreter = inside(
        "python", "-c", "import sys; print('%d.%d' % sys.version_info[:2], sys.prefix)"
    )
    assert interpreter.stdout.split() == [version, "/app/.venv"], interpreter


def check_answers(base_url: str) -> None:
    """Readiness (the database and Redis reached), then register, log in and /users/me."""
    email = f"image-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=base_url, timeout=30) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        registered = client.post(
            f"{API}/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 202, registered.text
        login = client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        me = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["email"] == email
        refused = client.get(f"{API}/users/me")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"], refused.text


def timed(table: Table, version: str, cell: str, step: Callable[[], object]) -> None:
    """Run one step of a version's image pipeline; its cell records the outcome and time."""
    started, ok = time.perf_counter(), False
    try:
        step()
        ok = True
    finally:
        table.record(version, cell, Cell(ok, time.perf_counter() - started))


@pytest.mark.slow
@pytest.mark.parametrize("version", image_versions())
def test_the_image_builds_and_runs(
    version: str,
    debian_envs: dict[str, debian_env.DebianEnv],
    version_renders: Renders,
    image_table: Table,
    docker: str,
    tmp_path: Path,
) -> None:
    """The rendered Dockerfile, built with BuildKit on stand-ins for the very tags its
    stages name, makes an image that migrates, serves and answers on `version`."""
    project = version_renders(version)
    bases = containers.dockerfile_bases(project / "Dockerfile", {})
    assert bases == [
        f"ghcr.io/astral-sh/uv:python{version}-bookworm-slim",
        f"python:{version}-slim-bookworm",
    ], bases
    env = debian_envs[version]
    image_table.environments.append(
        f"{version}: {' and '.join(bases)} stand in, from {env.suite}'s python{version}"
    )
    timed(image_table, version, "stand-ins", lambda: containers.python_stand_ins(version, bases))
    image = f"pyimage-{version.replace('.', '')}-{uuid.uuid4().hex[:8]}:test"
    try:
        timed(image_table, version, "image build",
              lambda: containers.build_image(docker, project, image))  # fmt: skip
        timed(image_table, version, "image run",
              lambda: run_image(docker, image, version, tmp_path))  # fmt: skip
    finally:
        containers._run([docker, "image", "rm", "--force", image])
