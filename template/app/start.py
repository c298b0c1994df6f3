"""The image's entrypoint: check the settings once, then become the given command.

uvicorn's supervisor restarts any worker that dies, and each worker builds the app: with
a setting production refuses, every worker would print the refusal and be restarted,
forever, the container never exiting. Checked here first, the container exits at once
with the refusal on one JSON log line and exit code 78 (EX_CONFIG, sysexits.h), which an
orchestrator shows as a failed start.

    python -m app.start uvicorn --factory app.main:create_app ...
"""

import json
import os
import sys
from collections.abc import Sequence

from app.core.config import SettingsError, get_settings

EX_CONFIG = 78


def main(command: Sequence[str]) -> int:
    """Exit code 78 with the refusal when the settings cannot run, 64 (EX_USAGE) without a
    command; otherwise this process becomes `command` and never returns."""
    if not command:
        print("usage: python -m app.start COMMAND [ARG...]", file=sys.stderr)
        return 64
    try:
        get_settings()
    except SettingsError as error:
        line = {"level": "critical", "event": "settings_refused", "message": str(error)}
        print(json.dumps(line), flush=True)
        return EX_CONFIG
    # The container's own command, as given: exec, so signals reach it directly.
    return os.execvp(command[0], list(command))  # noqa: S606


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
