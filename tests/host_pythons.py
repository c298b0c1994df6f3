"""Interpreters of other Python versions that this machine already has (pyenv's, or one
on PATH), for running a rendered service's suites on the version it was rendered for
where no Debian suite carries that version (3.12). Commands run on the host with a clean
environment (the caller says which services they reach), in folders bind-mounted where a
chroot would see them.

The interface is the one `tests/debian_env.py`'s chroots offer (`session`, `run`), so a
version's pipeline does not care where its interpreter lives.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.debian_env import CACHE_ROOT, PROXY_VARIABLES, CommandRun

PYENV_ROOT = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def find(version: str) -> Path | None:
    """The executable of an interpreter of `version` ("3.12") that runs, or None: pyenv's
    installations of that minor version, newest first, then python<version> on PATH. The
    interpreter's own `sys.executable` is returned, never a shim (pyenv's shims answer
    only for the version pyenv has selected)."""
    installed = sorted(
        PYENV_ROOT.glob(f"versions/{version}.*/bin/python{version}"),
        key=lambda path: [int(part) for part in path.parts[-3].split(".") if part.isdigit()],
        reverse=True,
    )
    for candidate in [*map(str, installed), shutil.which(f"python{version}")]:
        if candidate is None:
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2], sys.executable)"],
            capture_output=True,
            text=True,
            check=False,
        )
        found = probe.stdout.split()
        if probe.returncode == 0 and len(found) == 2 and found[0] == version:
            return Path(found[1])
    return None


@dataclass(frozen=True)
class HostPython:
    """Python `version` at `interpreter`, on this machine."""

    version: str
    interpreter: Path
    cache_root: Path = CACHE_ROOT / "host"

    @property
    def suite(self) -> str:
        """Where the version comes from, for the results table."""
        return f"host ({self.interpreter})"

    def python(self) -> str:
        return str(self.interpreter)

    @contextlib.contextmanager
    def session(self, binds: Mapping[Path, str] | None = None) -> Iterator[HostRunner]:
        """A runner whose commands see each of `binds`' host folders at its target path,
        as a chroot's would (bind mounts: paths read back as the target, not the source);
        every mount and mount point made is removed afterwards. Needs root."""
        mounted: list[Path] = []
        created: list[Path] = []
        try:
            for source, target in (binds or {}).items():
                where = Path(target)
                if not where.exists():
                    where.mkdir(parents=True)
                    created.append(where)
                subprocess.run(["mount", "--bind", str(source), str(where)], check=True)
                mounted.append(where)
            yield HostRunner()
        finally:
            for where in reversed(mounted):
                subprocess.run(["umount", "--lazy", str(where)], check=False)
            for where in reversed(created):
                with contextlib.suppress(OSError):
                    where.rmdir()


@dataclass(frozen=True)
class HostRunner:
    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """PATH, HOME and proxies of the host; nothing of the template's own test run (its
        virtualenv, service URLs, pytest options) unless `extra` passes it."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(Path.home()),
            "LANG": "C.UTF-8",
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_PROGRESS": "1",
        }
        env.update({name: os.environ[name] for name in PROXY_VARIABLES if name in os.environ})
        for name in ("UV_CACHE_DIR", "SSL_CERT_FILE", "UV_SYSTEM_CERTS"):
            if name in os.environ:
                env[name] = os.environ[name]
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
        """Run a shell script in `cwd`; output is stdout and stderr together."""
        started = time.perf_counter()
        result = subprocess.run(
            ["/bin/sh", "-c", f"cd {cwd} && {script}"],
            env=self.environment(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CommandRun(script, result.returncode, result.stdout, time.perf_counter() - started)
