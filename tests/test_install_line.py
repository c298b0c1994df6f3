"""The README's install line really renders the template (local extensions included)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_install_line() -> str:
    match = re.search(r"^(uv tool install copier[^\n]*)$", README.read_text(), re.MULTILINE)
    assert match, "README.md has no `uv tool install copier ...` line"
    return match.group(1).split("#")[0].strip()


def test_readme_install_line_renders_the_template(template_repo: Path, tmp_path: Path) -> None:
    install_line = readme_install_line()
    assert "copier-template-extensions" in install_line
    env = {
        **os.environ,
        "UV_TOOL_DIR": str(tmp_path / "tools"),
        "UV_TOOL_BIN_DIR": str(tmp_path / "bin"),
    }
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(shlex.split(install_line), env=env, check=True, capture_output=True, timeout=300)
    copier = tmp_path / "bin" / "copier"
    started = time.perf_counter()
    result = subprocess.run(
        [
            str(copier),
            "copy",
            "--trust",
            "--defaults",
            "--vcs-ref",
            "HEAD",
            str(template_repo),
            str(tmp_path / "svc"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "svc" / "app" / "main.py").is_file()
    assert "make dev" in result.stderr, "the next-steps message was not printed"
    print(f"\ncopier copy of the default variant through the README install: {elapsed:.2f} s")
