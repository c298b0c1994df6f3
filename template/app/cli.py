"""Operator commands, run against the configured database (DATABASE_URL).

python -m app.cli seed
    Add the access-control catalog and default roles the database lacks (every deploy).
python -m app.cli create-admin --email ops@example.com
    Create an administrator. The password is asked for twice (never echoed), or read
    from the first line of stdin with --password-stdin, or from ADMIN_PASSWORD.
python -m app.cli outbox status | outbox dead | outbox retry (ID ... | --all)
    The email outbox: pending and dead counts; the dead-lettered messages with their
    last error; a fresh retry budget for the given dead messages, or every one.

A database that cannot be reached is one line on stderr and exit status 1.
"""

import argparse
import asyncio
import getpass
import os
import sys
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from app.core.config import Settings, get_settings
from app.core.rbac import ADMIN_ROLE
from app.core.resources import open_resources
from app.exceptions import ConflictException
from app.schemas.user import UserCreate
from app.services.outbox_service import OutboxService
from app.services.password_policy import PasswordPolicy
from app.services.rbac_seed import seed
from app.services.user_service import user_service

PASSWORD_ENV = "ADMIN_PASSWORD"  # noqa: S105 - the variable's name, not a password


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.cli", description="Operator commands.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("seed", help="add missing permissions and default roles (idempotent)")
    admin = commands.add_parser("create-admin", help="create a user with the admin role")
    admin.add_argument("--email", required=True)
    admin.add_argument("--full-name")
    admin.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    outbox = commands.add_parser("outbox", help="inspect the email outbox, retry dead messages")
    actions = outbox.add_subparsers(dest="action", required=True)
    actions.add_parser("status", help="how many messages are pending and dead")
    actions.add_parser("dead", help="list the dead-lettered messages (latest 100)")
    retry = actions.add_parser("retry", help="give dead messages a fresh retry budget")
    retry.add_argument("ids", nargs="*", type=uuid.UUID, metavar="ID", help="dead message ids")
    retry.add_argument("--all", action="store_true", help="every dead message")
    return parser


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = settings or get_settings()
    try:
        return _run(parser, args, settings)
    except DBAPIError as error:
        # One line, not a traceback (an operator's command, not a bug report).
        print(f"error: {_database_problem(error, settings)}", file=sys.stderr)
        return 1


def _database_problem(error: DBAPIError, settings: Settings) -> str:
    """`error` in one line, never with the password of DATABASE_URL. Unreachable (down,
    refused, unknown host, refused login) is an `OperationalError` or a bare DB-API
    error raised while connecting (app.core.database)."""
    lines = str(error.orig if error.orig is not None else error).strip().splitlines()
    reason = lines[0] if lines else type(error).__name__
    if password := make_url(settings.database_url).password:
        reason = reason.replace(password, "***")
    if isinstance(error, OperationalError | InterfaceError) or type(error) is DBAPIError:
        return f"cannot reach the database: {reason}"
    return f"the database refused the command: {reason}"


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "seed":
        return _run_async(_seed(settings))
    if args.command == "outbox":
        ids: list[uuid.UUID] | None = None
        if args.action == "retry":
            if bool(args.ids) == args.all:
                parser.error("outbox retry: give the ids of dead messages, or --all")
            # An id given twice is retried once (and counted once).
            ids = None if args.all else list(dict.fromkeys(args.ids))
        return _run_async(_outbox(settings, args.action, ids))
    password = _read_password(parser, args.password_stdin)
    if reason := PasswordPolicy.from_settings(settings).problem(password, email=args.email):
        parser.error(f"password refused: {reason}")
    try:
        data = UserCreate(email=args.email, password=password, full_name=args.full_name)
    except ValidationError as error:
        parser.error(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        )
    return _run_async(_create_admin(settings, data))


def _run_async(command: Coroutine[Any, Any, int]) -> int:
    async def settled() -> int:
        try:
            return await command
        except DBAPIError:
            # aiosqlite stops its thread after a failed connect without waiting for it:
            # a moment for it to finish, or it reports to a closed loop (a traceback).
            await asyncio.sleep(0.1)
            raise

    return asyncio.run(settled())


def _read_password(parser: argparse.ArgumentParser, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if password := os.environ.get(PASSWORD_ENV):
        return password
    if not sys.stdin.isatty():
        parser.error(f"no terminal to ask for the password: use --password-stdin or {PASSWORD_ENV}")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat the password: ") != password:
        parser.error("the passwords differ")
    return password


async def _seed(settings: Settings) -> int:
    async with open_resources(settings) as resources, resources.session_factory() as db:
        report = await seed(db, resources.cache)
    if report.changed:
        print(
            f"Seeded {report.features} features, {report.actions} actions, "
            f"{report.permissions} permissions, {report.roles} roles, {report.grants} grants."
        )
    else:
        print("Nothing to seed: the catalog and default roles are up to date.")
    return 0


async def _create_admin(settings: Settings, data: UserCreate) -> int:
    async with open_resources(settings) as resources, resources.session_factory() as db:
        await seed(db, resources.cache)  # the admin role must exist, whatever was run before
        try:
            user = await user_service.register(
                db, data, resources.password_hasher, [ADMIN_ROLE], is_verified=True
            )
        except ConflictException as error:
            print(f"error: {error.message}", file=sys.stderr)
            return 1
    print(f"Created administrator {user.email} ({user.id}).")
    return 0


async def _outbox(settings: Settings, action: str, ids: list[uuid.UUID] | None) -> int:
    outbox = OutboxService(settings)
    async with open_resources(settings) as resources, resources.session_factory() as db:
        if action == "status":
            counts = await outbox.counts(db)
            print(
                f"pending: {counts.pending} (oldest {counts.oldest_pending_age_seconds:.0f} s)"
                f"  dead: {counts.dead}"
            )
        elif action == "dead":
            for message in await outbox.dead_letters(db):
                failed = f"{message.updated_at:%Y-%m-%d %H:%M:%S}Z"
                print(
                    f"{message.id}  {_printable(message.template)}  to"
                    f" {_printable(message.to_email)}  attempts {message.attempts}  last failed"
                    f" {failed}  {_printable(message.last_error or '')}"
                )
        else:
            retried = await outbox.retry_dead(db, ids)
            print(f"{retried} dead message(s) queued again.")
            if ids is not None and retried < len(ids):
                print(
                    "error: some ids are not dead messages, or their links have expired"
                    " (their users must ask again)",
                    file=sys.stderr,
                )
                return 1
    return 0


def _printable(text: str) -> str:
    """`text` with every non-printing character escaped (`\\n`, `\\x1b`): stored text,
    such as a provider's error answer, cannot add lines to a listing or drive the terminal."""
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


if __name__ == "__main__":
    sys.exit(main())
