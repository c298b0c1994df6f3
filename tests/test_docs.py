"""The documentation site builds with --strict: broken links and missing pages fail."""

import os
import subprocess
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.rendering import tool


def test_docs_build_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [tool("mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO_ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reference = (tmp_path / "site/reference/configuration/index.html").read_text()
    for setting in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "COOKIE_SECURE"):
        assert setting in reference, f"{setting} missing from the configuration reference"
