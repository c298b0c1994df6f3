"""Debian root filesystems of other suites, for running a rendered service on the Pythons
they carry (trixie: 3.13, forky: 3.14), and commands inside them with `chroot`.

A rootfs is built once with `debootstrap` from the mirror this machine's apt uses, into a
cache folder outside the repository (``/var/cache/fastapi-copier-template-debian/<suite>``,
or ``$DEBIAN_ENV_CACHE/<suite>``), keyed on the suite, the mirror and the package list:

    <cache>/<suite>/rootfs            -> rootfs-<key> (a symlink, swapped atomically)
    <cache>/<suite>/rootfs-<key>/     the tree debootstrap built, host CA certificates trusted
    <cache>/<suite>.lock              held while building, so parallel runs build once

A changed key builds a new tree beside the old one, swaps the symlink, then deletes the
old tree: a run never sees half a rootfs. `export_tarball` writes the tree as a tarball that
`docker import` takes as an image. Commands run in the host's network namespace (the host's
PostgreSQL and Redis on 127.0.0.1 are reachable), with /proc, /dev, the host's resolver
files, the host's uv binary and uv cache, and the caller's folders bind-mounted; every mount
is undone when the session ends, whatever happened inside.

Command line (root): ``python -m tests.debian_env build trixie [--tar trixie.tar]``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CACHE_ROOT = Path(os.environ.get("DEBIAN_ENV_CACHE", "/var/cache/fastapi-copier-template-debian"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
DEBOOTSTRAP_SCRIPTS = Path("/usr/share/debootstrap/scripts")
# Bump when the build steps below change in a way the package list does not show.
BUILD_REVISION = "1"
PROXY_VARIABLES = tuple(
    name
    for base in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")
    for name in (base, base.upper())
)
# Inside the rootfs: where the host's uv binary and uv cache are mounted.
UV_BINARY = "/usr/local/bin/uv"
UV_CACHE = "/root/.cache/uv"

# The Debian suite that carries each Python minor version as a package (3.12 is in none).
PYTHON_SUITES = {"3.13": "trixie", "3.14": "forky"}


class Unavailable(RuntimeError):
    """This machine cannot build or enter a Debian rootfs (the reason is the message)."""


def host_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 `URIs:` or a one-line `deb` entry
    naming a `bookworm`-style suite of Debian's main archive), else deb.debian.org."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        uris: list[str] = re.findall(r"^URIs:\s*(\S+)", text, re.MULTILINE)
        uris += re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+\s+main", text, re.MULTILINE)
        for uri in uris:
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def unavailable_reason(*, entering: bool = True) -> str | None:
    """Why a rootfs cannot be built (or, `entering`, run commands) here, or None."""
    if sys.platform != "linux":
        return "chroot environments need Linux"
    if os.geteuid() != 0:
        return "debootstrap, mount and chroot need root"
    for command in ("debootstrap", "chroot", "mount", "umount"):
        if shutil.which(command) is None:
            return f"{command} is not installed (apt-get install debootstrap)"
    if entering and shutil.which("uv") is None:
        return "uv is not on PATH (it is mounted into the rootfs)"
    return None


@dataclass(frozen=True)
class DebianEnv:
    """A debootstrapped `suite` with `packages` installed (plus ca-certificates)."""

    suite: str
    packages: tuple[str, ...]
    mirror: str = field(default_factory=host_mirror)
    cache_root: Path = CACHE_ROOT

    @property
    def key(self) -> str:
        material = "\n".join(
            [BUILD_REVISION, self.suite, self.mirror, *sorted(set(self.all_packages))]
        )
        return hashlib.sha256(material.encode()).hexdigest()[:12]

    @property
    def all_packages(self) -> tuple[str, ...]:
        return ("ca-certificates", *self.packages)

    @property
    def suite_dir(self) -> Path:
        return self.cache_root / self.suite

    @property
    def rootfs(self) -> Path:
        """The current tree (follows the symlink; valid after `ensure`)."""
        return self.suite_dir / f"rootfs-{self.key}"

    def is_built(self) -> bool:
        return (self.rootfs / ".debian-env-key").is_file() and (
            (self.rootfs / ".debian-env-key").read_text().strip() == self.key
        )

    def ensure(self, log: Path | None = None) -> float:
        """Build the rootfs unless a tree with this key is there; return the seconds spent
        (0.0 when it was reused). Raises Unavailable with the builder's output on failure."""
        reason = unavailable_reason(entering=False)
        if reason:
            raise Unavailable(reason)
        self.suite_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_root / f"{self.suite}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.is_built():
                return 0.0
            started = time.perf_counter()
            self._build(log)
            return time.perf_counter() - started

    def _build(self, log: Path | None) -> None:
        staging = self.suite_dir / f".building-{self.key}-{os.getpid()}"
        for stale in self.suite_dir.glob(".building-*"):
            _remove_tree(stale)
        script = DEBOOTSTRAP_SCRIPTS / self.suite
        # debootstrap knows suites released before it; a newer testing suite is built
        # like sid (same archive layout), e.g. forky with bookworm's debootstrap.
        script_argument = [] if script.exists() else [str(DEBOOTSTRAP_SCRIPTS / "sid")]
        _run_logged(
            [
                "debootstrap",
                "--variant=minbase",
                "--components=main",
                f"--include={','.join(self.all_packages)}",
                self.suite,
                str(staging),
                self.mirror,
                *script_argument,
            ],
            log,
        )
        # The TLS-intercepting egress proxy's CA (and any other local CA) is trusted inside.
        target_ca = staging / "usr/local/share/ca-certificates"
        target_ca.mkdir(parents=True, exist_ok=True)
        if HOST_CA_DIR.is_dir():
            for certificate in HOST_CA_DIR.rglob("*.crt"):
                shutil.copy2(certificate, target_ca / certificate.name)
        _run_logged(["chroot", str(staging), "update-ca-certificates"], log)
        # Mount points for what a session binds in.
        (staging / UV_BINARY.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (staging / UV_BINARY.lstrip("/")).touch()
        (staging / UV_CACHE.lstrip("/")).mkdir(parents=True, exist_ok=True)
        for name in ("etc/resolv.conf", "etc/hosts"):
            path = staging / name
            if path.is_symlink():
                path.unlink()
            path.touch()
        shutil.rmtree(staging / "var/cache/apt/archives", ignore_errors=True)
        (staging / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        (staging / ".debian-env-key").write_text(self.key + "\n")
        final = self.rootfs
        if final.exists():
            _remove_tree(final)
        staging.rename(final)
        link = self.suite_dir / "rootfs"
        temporary_link = self.suite_dir / f".rootfs-{os.getpid()}"
        temporary_link.unlink(missing_ok=True)
        temporary_link.symlink_to(final.name)
        temporary_link.replace(link)  # atomic: readers see the old tree or the new one
        for old in self.suite_dir.glob("rootfs-*"):
            if old != final and not _mounts_under(old):  # a busy tree goes next time
                _remove_tree(old)

    def size_bytes(self) -> int:
        """Bytes of the files in the tree, not counting what a session has mounted in it."""
        mounted = set(_mounts_under(self.rootfs))
        total = 0
        for folder, folders, files in os.walk(self.rootfs):
            folders[:] = [name for name in folders if os.path.join(folder, name) not in mounted]
            for name in files:
                path = os.path.join(folder, name)
                if path not in mounted and not os.path.islink(path):
                    total += os.lstat(path).st_size
        return total

    def export_tarball(self, destination: Path) -> Path:
        """The rootfs as a tarball (numeric owners), ready for `docker import`. Taken through
        a plain bind mount of the tree, which shows none of the mounts of running sessions."""
        with tempfile.TemporaryDirectory(prefix="debian-env-export-") as view:
            subprocess.run(["mount", "--bind", str(self.rootfs), view], check=True)
            try:
                subprocess.run(
                    [
                        "tar",
                        "--create",
                        "--file",
                        str(destination),
                        "--numeric-owner",
                        "--exclude=./.debian-env-key",
                        "--directory",
                        view,
                        ".",
                    ],
                    check=True,
                )
            finally:
                _unmount(Path(view))
        return destination

    @contextlib.contextmanager
    def session(self, binds: Mapping[Path, str] | None = None) -> Iterator[Chroot]:
        """Mount what commands need, yield a runner, unmount everything afterwards.

        `binds` maps host folders to absolute paths inside the rootfs (created if absent).
        """
        reason = unavailable_reason()
        if reason:
            raise Unavailable(reason)
        root = self.rootfs
        mounted: list[Path] = []

        created: list[Path] = []

        def bind(source: Path, target: str, *, recursive: bool = False) -> None:
            where = root / target.lstrip("/")
            if source.is_dir() and not where.exists():
                where.mkdir(parents=True)
                created.append(where)
            subprocess.run(
                ["mount", "--rbind" if recursive else "--bind", str(source), str(where)],
                check=True,
            )
            mounted.append(where)
            if recursive:  # unmounting the copy must never reach the host's /dev
                subprocess.run(["mount", "--make-rslave", str(where)], check=True)

        uv_cache = Path(os.environ.get("UV_CACHE_DIR") or (Path.home() / ".cache/uv"))
        uv_cache.mkdir(parents=True, exist_ok=True)
        uv_binary = shutil.which("uv")
        assert uv_binary is not None
        try:
            subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
            mounted.append(root / "proc")
            bind(Path("/dev"), "/dev", recursive=True)
            bind(Path("/etc/resolv.conf").resolve(), "/etc/resolv.conf")
            bind(Path("/etc/hosts"), "/etc/hosts")
            bind(Path(uv_binary).resolve(), UV_BINARY)
            bind(uv_cache, UV_CACHE)
            for source, target in (binds or {}).items():
                bind(source, target)
            yield Chroot(root)
        finally:
            for where in reversed(mounted):
                _unmount(where)
            for where in reversed(created):  # the caller's mount points, now empty
                with contextlib.suppress(OSError):
                    where.rmdir()


@dataclass
class CommandRun:
    command: str
    returncode: int
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class Chroot:
    root: Path

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A clean environment: the host's proxy settings passed through, certificates
        from the rootfs's store (with the host's CAs), uv on the rootfs's interpreter."""
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
            "UV_SYSTEM_CERTS": "1",
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_LINK_MODE": "copy",  # the uv cache is another mount: no hard links across
            "UV_CACHE_DIR": UV_CACHE,
            "UV_NO_PROGRESS": "1",
        }
        env.update({name: os.environ[name] for name in PROXY_VARIABLES if name in os.environ})
        env.update(extra or {})
        return env

    def run(
        self,
        script: str,
        *,
        cwd: str = "/",
        env: Mapping[str, str] | None = None,
        timeout: float = 1800,
    ) -> CommandRun:
        """Run a shell script inside the rootfs; output is stdout and stderr together."""
        command = [
            "chroot",
            str(self.root),
            "/usr/bin/env",
            "-i",
            *(f"{name}={value}" for name, value in self.environment(env).items()),
            "/bin/sh",
            "-c",
            f"cd {cwd} && {script}",
        ]
        started = time.perf_counter()
        result = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CommandRun(script, result.returncode, result.stdout, time.perf_counter() - started)


def python_env(version: str) -> DebianEnv:
    """The rootfs whose suite carries Python `version` (see PYTHON_SUITES), with make and
    the interpreter; compilers are not included (every dependency ships wheels)."""
    return DebianEnv(PYTHON_SUITES[version], (f"python{version}", "make"))


def _run_logged(command: Sequence[str], log: Path | None) -> None:
    result = subprocess.run(
        ["nice", "-n", "10", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if log is not None:
        with log.open("a") as handle:
            handle.write(f"$ {' '.join(command)}\n{result.stdout}\n")
    if result.returncode != 0:
        raise Unavailable(
            f"{' '.join(command)} failed (exit {result.returncode}):\n{result.stdout[-6000:]}"
        )


def _unmount(where: Path) -> None:
    """Unmount `where` and anything under it; lazily if something still holds it."""
    result = subprocess.run(["umount", "--recursive", str(where)], capture_output=True, check=False)
    if result.returncode != 0:
        subprocess.run(["umount", "--recursive", "--lazy", str(where)], check=False)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    return [line.split()[1] for line in mounts if (line.split()[1] + "/").startswith(prefix)]


def _remove_tree(path: Path) -> None:
    """Delete a rootfs, refusing while anything is still mounted inside it."""
    busy = _mounts_under(path)
    if busy:
        raise RuntimeError(f"not removing {path}: still mounted: {busy}")
    shutil.rmtree(path, ignore_errors=False)


def main(argv: Sequence[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.debian_env", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build (or reuse) a suite's rootfs")
    build.add_argument("suite", help="a Debian suite, e.g. trixie, forky")
    build.add_argument("--package", action="append", default=[], help="a package to include")
    build.add_argument("--python", help="include the python<version> package of PYTHON_SUITES")
    build.add_argument("--tar", type=Path, help="also write the rootfs as a tarball here")
    arguments = parser.parse_args(argv)
    if arguments.python:
        env = python_env(arguments.python)
        if env.suite != arguments.suite:
            parser.error(f"Python {arguments.python} comes from {env.suite}")
        env = DebianEnv(env.suite, (*env.packages, *arguments.package))
    else:
        env = DebianEnv(arguments.suite, tuple(arguments.package))
    seconds = env.ensure()
    print(f"{env.rootfs} ({f'built in {seconds:.0f} s' if seconds else 'reused'})")
    if arguments.tar:
        print(env.export_tarball(arguments.tar))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
