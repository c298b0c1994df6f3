"""Running a rendered service's container stack for real: the engine, stand-in base images,
a self-signed certificate authority, a mail server, and one compose project per run.

The engine and images come from `scripts/container-engine` and `scripts/stand-in-images`
(which `.ci/run` also calls): Docker Engine with BuildKit, Compose v2, and local stand-ins
for the public images the Dockerfile and compose file name, built once and reused. Where
no engine can be had, `engine()` skips the test with the reason. Every published port is
bound to 127.0.0.1, and `Compose.down()` removes the project's containers and volumes.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
# Subnets the test stacks' edge networks are taken from (one /24 per run).
EDGE_POOL = ipaddress.IPv4Network("172.31.0.0/16")


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)


def engine() -> str:
    """The docker CLI to use (with BuildKit and Compose v2); skips when none can be had."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the real-stack test needs a Linux host with Docker Engine")
    result = _run([str(SCRIPTS / "container-engine")], timeout=900)
    if result.returncode == 3:
        pytest.skip(f"no container engine can be had here: {result.stderr.strip()}")
    assert result.returncode == 0, f"scripts/container-engine failed:\n{result.stderr}"
    return result.stdout.strip().splitlines()[-1]


def compose_images(compose_file: Path) -> dict[str, str]:
    """service -> image, for the services that use a public image (not the app's own)."""
    services = yaml.safe_load(compose_file.read_text())["services"]
    return {
        name: service["image"]
        for name, service in services.items()
        if "build" not in service and "image" in service
    }


def dockerfile_bases(dockerfile: Path, build_args: dict[str, str]) -> list[str]:
    """The images the Dockerfile's stages start FROM, with its ARG defaults filled in."""
    text = dockerfile.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, flags=re.M)) | build_args
    bases = []
    for image in re.findall(r"^FROM (\S+)", text, flags=re.M):
        bases.append(re.sub(r"\$\{(\w+)\}", lambda match: args[match.group(1)], image))
    return bases


def stand_ins(services: dict[str, str]) -> float:
    """Build (or reuse) the stand-ins under the tags `services` gives; the seconds it took."""
    started = time.perf_counter()
    arguments = [f"{name}={tag}" for name, tag in services.items()]
    result = _run([str(SCRIPTS / "stand-in-images"), "python", "uv", *arguments], timeout=1800)
    assert result.returncode == 0, f"scripts/stand-in-images failed:\n{result.stderr}"
    return time.perf_counter() - started


def image_exists(docker: str, tag: str) -> bool:
    return _run([docker, "image", "inspect", tag]).returncode == 0


def image_id(docker: str, tag: str) -> str:
    """The image's id, or "" when there is none."""
    return _run([docker, "image", "inspect", "--format", "{{.Id}}", tag]).stdout.strip()


def build_image(docker: str, project: Path, tag: str, *, no_cache: bool = False) -> float:
    """`docker build` of the project's Dockerfile with BuildKit; the seconds it took."""
    command = [docker, "build", "-t", tag]
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy"):
        if os.environ.get(variable):
            command += ["--build-arg", f"{variable}={os.environ[variable]}"]
    if no_cache:
        command.append("--no-cache")
    started = time.perf_counter()
    result = _run(
        [*command, "."], cwd=project, env={**os.environ, "DOCKER_BUILDKIT": "1"}, timeout=1800
    )
    assert result.returncode == 0, f"docker build failed:\n{result.stderr[-6000:]}"
    return time.perf_counter() - started


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def edge_subnet(docker: str) -> ipaddress.IPv4Network:
    """A /24 of EDGE_POOL that no Docker network on this host uses."""
    taken: list[ipaddress.IPv4Network] = []
    names = _run([docker, "network", "ls", "-q"]).stdout.split()
    if names:
        inspected = json.loads(_run([docker, "network", "inspect", *names]).stdout or "[]")
        for network in inspected:
            for config in (network.get("IPAM") or {}).get("Config") or []:
                if config.get("Subnet", "").count(".") == 3:
                    taken.append(ipaddress.IPv4Network(config["Subnet"]))
    candidates = [ipaddress.IPv4Network(net) for net in EDGE_POOL.subnets(new_prefix=24)]
    start = uuid.uuid4().int % len(candidates)
    for candidate in candidates[start:] + candidates[:start]:
        if not any(candidate.overlaps(used) for used in taken):
            return candidate
    raise AssertionError(f"no free /24 left in {EDGE_POOL}")


def self_signed_tls(certs: Path, work: Path) -> Path:
    """A throwaway CA and a certificate for localhost / 127.0.0.1 it signed, written where
    the generated README says (fullchain.pem, privkey.pem); returns the CA's certificate."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make the test certificate"
    work.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = work / "ca.key", work / "ca.pem"
    key, request, cert = certs / "privkey.pem", work / "server.csr", certs / "fullchain.pem"
    extensions = work / "server.ext"
    extensions.write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
    )
    steps = [
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=real-stack test CA", "-keyout", ca_key, "-out", ca_cert],
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-keyout", key, "-out", request],
        [openssl, "x509", "-req", "-days", "2", "-in", request, "-CA", ca_cert,
         "-CAkey", ca_key, "-CAcreateserial", "-extfile", extensions, "-out", cert],
    ]  # fmt: skip
    for step in steps:
        result = _run([str(part) for part in step])
        assert result.returncode == 0, result.stderr
    key.chmod(0o644)  # read by nginx's master in the container, which is root there
    return ca_cert


def leaf_certificate(ca: Path, directory: Path, host: str) -> tuple[Path, Path]:
    """A certificate for `host` signed by the CA `self_signed_tls` made (its `ca.pem` and
    `ca.key` side by side): the certificate's and the key's paths, both world-readable."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make the test certificate"
    directory.mkdir(parents=True, exist_ok=True)
    key, request, cert = directory / "key.pem", directory / "cert.csr", directory / "cert.pem"
    extensions = directory / "cert.ext"
    extensions.write_text(
        f"subjectAltName=DNS:{host}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
    )
    steps = [
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}",
         "-keyout", key, "-out", request],
        [openssl, "x509", "-req", "-days", "2", "-in", request, "-CA", ca,
         "-CAkey", ca.with_suffix(".key"), "-CAcreateserial", "-extfile", extensions,
         "-out", cert],
    ]  # fmt: skip
    for step in steps:
        result = _run([str(part) for part in step])
        assert result.returncode == 0, result.stderr
    key.chmod(0o644)
    return cert, key


def start_mail_server(
    docker: str, name: str, network: str, python_image: str, work: Path, tls: Path
) -> str:
    """aiosmtpd (from this repository's environment) in a container named `name` on
    `network`, reachable there as `mail`, printing every message it receives to its log.
    It requires STARTTLS, with the certificate and key in `tls` (cert.pem, key.pem).
    Returns the container's id; remove it before the network."""
    packages = work / "mail-packages"
    packages.mkdir(parents=True, exist_ok=True)
    import aiosmtpd
    import attr
    import public

    for module in (aiosmtpd, attr, public):
        source = Path(module.__file__ or "").parent
        shutil.copytree(source, packages / source.name, dirs_exist_ok=True)
    attrs_dir = Path(attr.__file__ or "").parent.parent / "attrs"
    if attrs_dir.is_dir():
        shutil.copytree(attrs_dir, packages / "attrs", dirs_exist_ok=True)
    result = _run(
        [
            docker, "run", "--detach", "--name", name, "--network", network,
            "--network-alias", "mail", "--read-only", "--user", "65534:65534",
            "--env", "PYTHONPATH=/mail-packages", "--env", "PYTHONUNBUFFERED=1",
            "--volume", f"{packages}:/mail-packages:ro", "--volume", f"{tls}:/mail-tls:ro",
            python_image, "python", "-m", "aiosmtpd", "-n", "-l", "0.0.0.0:1025",
            "--tlscert", "/mail-tls/cert.pem", "--tlskey", "/mail-tls/key.pem",
            "-c", "aiosmtpd.handlers.Debugging",
        ],
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, f"the mail server did not start:\n{result.stderr}"
    return result.stdout.strip()


def readme_env_block(readme: Path, marker: str = "compose-env") -> dict[str, str]:
    """The settings the generated README tells a user to add to .env: the `sh` block
    between `<!-- marker -->` and `<!-- /marker -->` (indented or not), as key -> value."""
    block = re.search(
        rf"<!-- {marker} -->\s*```sh\n(.*?)```\s*<!-- /{marker} -->",
        readme.read_text(),
        flags=re.S,
    )
    assert block, f"the README's .env block {marker!r} is missing"
    settings = {}
    for line in block.group(1).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        settings[key.strip()] = value.strip()
    return settings


@dataclass
class Compose:
    """One compose project of a rendered service, under a name of its own."""

    docker: str
    project: Path
    name: str
    files: list[Path]
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        command = [self.docker, "compose", "-p", self.name]
        for file in self.files:
            command += ["-f", str(file)]
        result = _run(
            [*command, *args], cwd=self.project, env={**os.environ, **self.env}, timeout=timeout
        )
        if check:
            assert result.returncode == 0, (
                f"docker compose {' '.join(args)} failed:\n{result.stdout[-3000:]}"
                f"{result.stderr[-6000:]}\n{self.diagnostics()}"
            )
        return result.stdout

    def diagnostics(self) -> str:
        """What went wrong, for an assertion message: states and the last log lines."""
        command = [self.docker, "compose", "-p", self.name]
        for file in self.files:
            command += ["-f", str(file)]
        env = {**os.environ, **self.env}
        states = _run([*command, "ps", "-a"], cwd=self.project, env=env).stdout
        logs = _run([*command, "logs", "--tail", "30"], cwd=self.project, env=env).stdout
        return f"--- containers\n{states}\n--- logs\n{logs[-8000:]}"

    def containers(self, service: str) -> list[str]:
        return self.run("ps", "-q", service).split()

    def inspect(self, container: str) -> dict[str, Any]:
        result = _run([self.docker, "inspect", container])
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout)[0])

    def exec(self, container: str, *command: str) -> subprocess.CompletedProcess[str]:
        return _run([self.docker, "exec", container, *command], timeout=60)

    def logs(self, container: str) -> str:
        result = _run([self.docker, "logs", container], timeout=60)
        return result.stdout + result.stderr

    def down(self) -> None:
        """Remove the containers, networks and volumes (the test's teardown)."""
        self.run("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)


def python_stand_ins(version: str, bases: list[str]) -> float:
    """Build (or reuse) the python and uv stand-ins on the Debian suite that carries Python
    `version` (`scripts/stand-in-images --python`), under the tags the Dockerfile's stages
    name (`bases`, from `dockerfile_bases`); the seconds it took."""
    python = [tag for tag in bases if tag.startswith("python:")]
    uv = [tag for tag in bases if tag.startswith("ghcr.io/astral-sh/uv:")]
    assert len(python) == len(uv) == 1, f"expected one python and one uv stage: {bases}"
    started = time.perf_counter()
    result = _run(
        [
            str(SCRIPTS / "stand-in-images"),
            "--python",
            version,
            f"python={python[0]}",
            f"uv={uv[0]}",
        ],
        timeout=1800,
    )
    assert result.returncode == 0, f"scripts/stand-in-images --python failed:\n{result.stderr}"
    return time.perf_counter() - started


def image_command(docker: str, tag: str) -> list[str]:
    """The image's CMD (its Config.Cmd) as a list."""
    result = _run([docker, "image", "inspect", "--format", "{{json .Config.Cmd}}", tag])
    assert result.returncode == 0, result.stderr
    return [str(part) for part in json.loads(result.stdout)]
