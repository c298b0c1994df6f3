"""Sentry is optional: imported only when SENTRY_DSN is set.

Each case runs in a fresh interpreter, since initialising the SDK patches the web
framework for the whole process.
"""

import subprocess
import sys

from tests.conftest import PROJECT_ROOT

CREATE_APP = """
import sys
from app.core.config import Settings
from app.main import create_app
create_app(Settings(_env_file=None, sentry_dsn={dsn!r}))
{check}
"""


def _run(dsn: str | None, check: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  (our own interpreter, fixed code)
        [sys.executable, "-c", CREATE_APP.format(dsn=dsn, check=check)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_a_dsn_the_sdk_is_not_even_imported() -> None:
    result = _run(None, "assert 'sentry_sdk' not in sys.modules, 'sentry_sdk was imported'")

    assert result.returncode == 0, result.stderr


def test_a_dsn_turns_error_reporting_on() -> None:
    check = (
        "import sentry_sdk\n"
        "client = sentry_sdk.get_client()\n"
        "assert client.is_active()\n"
        "assert client.options['environment'] == 'development'\n"
        "assert client.options['send_default_pii'] is False\n"
    )
    result = _run("https://public@sentry.invalid/1", check)

    assert result.returncode == 0, result.stderr
