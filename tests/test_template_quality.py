"""The template repository's own Python (tests, extensions) is held to the same bar."""

import subprocess

from tests.conftest import REPO_ROOT
from tests.rendering import tool


def test_template_code_is_ruff_clean() -> None:
    for command in (["check", "tests", "extensions"], ["format", "--check", "tests", "extensions"]):
        result = subprocess.run(
            [tool("ruff"), *command], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
