"""The image's entrypoint: check the settings once, then run the given command.

uvicorn's supervisor restarts any worker that dies, and each worker builds the app: with
a setting production refuses, every worker would print the refusal and be restarted,
forever, the container never exiting. Checked here first, the container exits at once
with the refusal on one JSON log line and exit code 78 (EX_CONFIG, sysexits.h), which an
orchestrator shows as a failed start.

    python -m app.start uvicorn --factory app.main:create_app ...
"""

import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from uvicorn import main as uvicorn_command
from uvicorn.supervisors import Multiprocess

from app.core.config import SettingsError, get_settings

EX_CONFIG = 78


class ListenerFirstSupervisor(Multiprocess):
    """uvicorn's worker supervisor (`--workers`/`WEB_CONCURRENCY` > 1), closing its copy of
    the listening socket before it stops the workers.

    uvicorn's own keeps the socket open until every worker has finished its requests
    (up to --timeout-graceful-shutdown; encode/uvicorn#2010, not merged): meanwhile the
    kernel completes connections that no process will accept, and resets them when the
    supervisor exits. nginx may not resend a POST that met such a reset, so a replica
    stopped by a rollout failed requests with 502. With the socket closed first, a new
    connection is refused at once, and nginx passes it on to another replica.
    """

    def terminate_all(self) -> None:
        for listener in self.sockets:
            listener.close()
        super().terminate_all()


def run_uvicorn(arguments: Sequence[str]) -> NoReturn:
    """uvicorn's command line (`uvicorn ARG...`), in this process, with the supervisor
    above; exits with uvicorn's exit code."""
    # The module that starts the supervisor (the package exports the command under its name).
    cli_module = importlib.import_module("uvicorn.main")
    cli_module.Multiprocess = ListenerFirstSupervisor  # type: ignore[attr-defined]
    uvicorn_command.main(args=list(arguments), prog_name="uvicorn")


def main(command: Sequence[str]) -> int:
    """Exit code 78 with the refusal when the settings cannot run, 64 (EX_USAGE) without a
    command; otherwise this process runs `command` and never returns."""
    if not command:
        print("usage: python -m app.start COMMAND [ARG...]", file=sys.stderr)
        return 64
    try:
        get_settings()
    except SettingsError as error:
        line = {"level": "critical", "event": "settings_refused", "message": str(error)}
        print(json.dumps(line), flush=True)
        return EX_CONFIG
    if Path(command[0]).name == "uvicorn":
        run_uvicorn(command[1:])
    # Any other command, as given: exec, so signals reach it directly.
    return os.execvp(command[0], list(command))  # noqa: S606


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
