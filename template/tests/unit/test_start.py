"""The image's entrypoint refuses settings that cannot run before any server starts."""

import json
import os
import subprocess
import sys

import pytest

from app import start
from app.core.config import get_settings


def run_start(*command: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  (our own interpreter, fixed code)
        [sys.executable, "-m", "app.start", *command],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
        timeout=60,
    )


def test_refused_settings_exit_78_before_the_command_runs() -> None:
    """With uvicorn's workers the refusal once repeated forever and the container ran on."""
    result = run_start("sh", "-c", "echo ran", ENVIRONMENT="production", SECRET_KEY="short")

    assert result.returncode == 78
    assert "ran" not in result.stdout
    (line,) = result.stdout.splitlines()
    refusal = json.loads(line)
    assert refusal["event"] == "settings_refused"
    assert "SECRET_KEY" in refusal["message"]


def test_settings_that_run_hand_over_to_the_command() -> None:
    result = run_start("sh", "-c", "echo ran; exit 3")

    assert (result.returncode, result.stdout) == (3, "ran\n")


def test_no_command_is_a_usage_error() -> None:
    assert run_start().returncode == 64


def test_the_refusal_is_one_json_line_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "short")
    get_settings.cache_clear()
    try:
        assert start.main(["true"]) == start.EX_CONFIG
    finally:
        get_settings.cache_clear()

    assert json.loads(capsys.readouterr().out)["level"] == "critical"
    assert start.main([]) == 64
