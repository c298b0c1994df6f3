"""Running a rendered service for real on this machine: nginx, uvicorn processes, ports.

Everything listens on loopback addresses only, and every process started here is
stopped by the context manager that started it, whatever the test's outcome.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

NGINX_CANDIDATES = ("nginx", "/usr/sbin/nginx")


def find_or_install(candidates: tuple[str, ...], package: str) -> str:
    """The path of the first of `candidates` found; installs Debian's `package` when none
    is and we are root (what .ci/run does up front, for a run without it)."""
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(
            f"{candidates[0]} is not installed and cannot be installed here (needs root and"
            f" apt-get): install it, e.g. `apt-get install {package}`, to run this test"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Wait for apt's lock rather than fail: another test worker may be installing too.
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
    install = [*apt, "install", "-y", "-q", "--no-install-recommends", package]
    result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:  # package lists missing or stale: refresh once and retry
        subprocess.run([*apt, "update", "-q"], env=env, capture_output=True, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    found = next(filter(None, map(shutil.which, candidates)), None)
    if result.returncode != 0 or not found:
        pytest.fail(f"installing {package} failed:\n{result.stdout[-2000:]}{result.stderr}")
    return found


def find_or_install_nginx() -> str:
    """nginx's path; installs Debian's nginx-light when missing and we are root."""
    return find_or_install(NGINX_CANDIDATES, "nginx-light")


def nginx_version(nginx: str) -> tuple[int, ...]:
    banner = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=True).stderr
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", banner)
    assert match, banner
    return tuple(int(part) for part in match.groups())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def replace_once(text: str, old: str, new: str) -> str:
    """Replace a line the test relies on; fail loudly if the shipped file changed shape."""
    assert text.count(old) == 1, f"expected exactly one {old!r} in the nginx config"
    return text.replace(old, new)


def public_host_config(public_host: str) -> str:
    """What docker-compose.yml writes to /etc/nginx/public.conf for PUBLIC_HOST."""
    return f'map $host $public_host {{\n    default "{public_host}";\n}}\n'


def shipped_nginx_config(
    project: Path, site: str, *, certs: Path | None = None, public_host: str = "localhost"
) -> str:
    """deploy/nginx as nginx in the compose stack reads it, in one file: nginx.conf with
    the site (`https` or `http`), proxy.conf and the public host (compose's public.conf)
    inlined where they are included."""
    nginx_dir = project / "deploy/nginx"
    proxy = (nginx_dir / "proxy.conf").read_text()
    site_text = replace_once(
        (nginx_dir / f"{site}.conf").read_text(), "include /etc/nginx/proxy.conf;", proxy
    )
    if certs is not None:
        site_text = site_text.replace("/etc/nginx/certs", str(certs))
    config = replace_once(
        (nginx_dir / "nginx.conf").read_text(), "include /etc/nginx/site.conf;", site_text
    )
    return replace_once(config, "include /etc/nginx/public.conf;", public_host_config(public_host))


def local_nginx_config(
    project: Path, *, upstreams: list[str], listen: str, site: str = "http"
) -> str:
    """The shipped plain-HTTP nginx config with only its addresses changed for this
    machine: the replicas a fixed group (no Docker DNS here), the public host `listen`."""
    servers = "".join(f"\n        server {address};" for address in upstreams)
    config = replace_once(
        shipped_nginx_config(project, site, public_host=listen),
        "set $app_upstream app:8000;",
        "set $app_upstream local_replicas;",
    )
    config = replace_once(
        config,
        "resolver 127.0.0.11 valid=1s ipv6=off;",
        f"upstream local_replicas {{{servers}\n    }}",
    )
    return replace_once(config, "listen 80;", f"listen {listen};")


TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@dataclass
class Nginx:
    binary: str
    prefix: Path

    def command(self, config: Path, *extra_globals: str) -> list[str]:
        # The shipped file leaves pid and error_log to the image's defaults: put them here.
        directives = " ".join(
            [
                f"pid {self.prefix}/nginx.pid;",
                f"error_log {self.prefix}/error.log warn;",
                *extra_globals,
            ]
        )
        return [self.binary, "-p", f"{self.prefix}/", "-c", str(config), "-g", directives]

    def check(self, config: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command(config), "-t"], capture_output=True, text=True, check=False, timeout=30
        )

    @contextmanager
    def running(self, config: Path) -> Iterator[None]:
        """Serve `config` in the foreground until the block ends."""
        temp_paths = ""
        for name in TEMP_PATHS:
            (self.prefix / name).mkdir(exist_ok=True)
            temp_paths += f"\n    {name}_temp_path {self.prefix / name};"
        served = self.prefix / "served.conf"
        served.write_text(config.read_text().replace("http {", "http {" + temp_paths, 1))
        # As root, workers would switch to a user that cannot enter pytest's private tmp.
        extra = ["daemon off;"] + (["user root;"] if os.geteuid() == 0 else [])
        with (self.prefix / "nginx.stdout").open("w") as log:
            process = subprocess.Popen(
                self.command(served, *extra), stdout=log, stderr=subprocess.STDOUT
            )
            try:
                yield
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Instance:
    """One uvicorn process of the rendered service."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@contextmanager
def uvicorn_instance(
    project: Path, name: str, env: dict[str, str], log_dir: Path
) -> Iterator[Instance]:
    port = free_port()
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, **env, "PYTHONPATH": str(project), "PYTHONUNBUFFERED": "1"}
    full_env.pop("VIRTUAL_ENV", None)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "app.main:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-proxy-headers",
                "--no-access-log",
                "--timeout-graceful-shutdown",
                "5",
            ],
            cwd=project,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        instance = Instance(name, port, process, log_path)
        try:
            yield instance
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


def wait_until(
    check_url: str, *, status: int = 200, timeout: float = 90.0, process: Instance | None = None
) -> float:
    """Poll a URL until it answers `status`; the seconds it took."""
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < timeout:
        if process is not None and process.process.poll() is not None:
            raise AssertionError(f"{process.name} exited:\n{process.log_text()[-4000:]}")
        try:
            response = httpx.get(check_url, timeout=2.0)
            if response.status_code == status:
                return time.monotonic() - started
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(0.1)
    detail = process.log_text()[-4000:] if process else ""
    raise AssertionError(f"{check_url} never answered {status} in {timeout} s: {last}\n{detail}")
