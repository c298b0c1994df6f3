"""Operator commands, run against the configured database (DATABASE_URL).

python -m app.cli seed
    Add the access-control catalog and default roles the database lacks (every deploy).
python -m app.cli create-admin --email ops@example.com
    Create an administrator. The password is asked for twice (never echoed), or read
    from the first line of stdin with --password-stdin, or from ADMIN_PASSWORD.
"""

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from app.core.config import Settings, get_settings
from app.core.rbac import ADMIN_ROLE
from app.core.resources import open_resources
from app.exceptions import ConflictException
from app.schemas.user import UserCreate
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
    return parser


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = settings or get_settings()
    if args.command == "seed":
        return asyncio.run(_seed(settings))
    password = _read_password(parser, args.password_stdin)
    if reason := PasswordPolicy.from_settings(settings).problem(password, email=args.email):
        parser.error(f"password refused: {reason}")
    try:
        data = UserCreate(email=args.email, password=password, full_name=args.full_name)
    except ValidationError as error:
        parser.error(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        )
    return asyncio.run(_create_admin(settings, data))


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


if __name__ == "__main__":
    sys.exit(main())
