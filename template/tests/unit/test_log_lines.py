"""Every line the service writes is one JSON object: nothing reaches stderr as plain text."""

import json
import subprocess
import sys

WARN_AFTER_CONFIGURING = """
import warnings
from app.core.config import Settings
from app.core.logging import configure_logging
configure_logging(Settings(_env_file=None, log_json=True))
warnings.warn("DELETE statement on table 'roles' expected to delete 1 row(s); 0 were matched")
"""


def test_python_warnings_are_logged_as_json_lines() -> None:
    """Concurrent deletes made SQLAlchemy warn (SAWarning) in plain text on stderr."""
    result = subprocess.run(  # noqa: S603  (our own interpreter, fixed code)
        [sys.executable, "-W", "always", "-c", WARN_AFTER_CONFIGURING],
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stderr == ""
    (line,) = result.stdout.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "py.warnings"
    assert "0 were matched" in entry["event"]
