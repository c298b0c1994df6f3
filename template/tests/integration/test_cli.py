"""`python -m app.cli`: seeding and creating an administrator on a freshly migrated database."""

import asyncio
import io
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.cli import PASSWORD_ENV, main
from app.core.config import Settings
from app.core.resources import open_resources
from app.models import User
from tests.helpers import build_settings
from tests.integration.databases import alembic_config, empty_database

# No letters, like tests.helpers.DEFAULT_PASSWORD: no service name can be inside it.
STRONG_PASSWORD = "6604/3187-2259/9031"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at a database migrated to head, as after a first deploy."""
    with empty_database(tmp_path_factory.mktemp("cli")) as url:
        command.upgrade(alembic_config(url), "head")
        yield build_settings(database_url=url)


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    monkeypatch.delenv(PASSWORD_ENV, raising=False)


async def _load(settings: Settings, email: str) -> User | None:
    async with open_resources(settings) as resources, resources.session_factory() as db:
        found: User | None = await db.scalar(
            select(User).where(User.email == email).options(selectinload(User.roles))
        )
    return found


def test_seed_after_migrating_has_nothing_to_add(
    migrated: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # The migration inserted exactly what app.core.rbac defines.
    assert main(["seed"], settings=migrated) == 0
    assert "Nothing to seed" in capsys.readouterr().out


def test_create_admin_reads_the_password_from_stdin_and_never_prints_it(
    migrated: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, f"{STRONG_PASSWORD}\n")

    code = main(["create-admin", "--email", "Ops@Example.com", "--password-stdin"], migrated)

    output = capsys.readouterr()
    assert code == 0, output.err
    assert "Created administrator ops@example.com" in output.out
    assert STRONG_PASSWORD not in output.out + output.err
    admin = asyncio.run(_load(migrated, "ops@example.com"))
    assert admin is not None
    assert [role.name for role in admin.roles] == ["admin"]
    assert admin.is_verified
    assert STRONG_PASSWORD not in admin.hashed_password


def test_create_admin_refuses_an_existing_email(
    migrated: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, f"{STRONG_PASSWORD}\n")
    main(["create-admin", "--email", "twice@example.com", "--password-stdin"], migrated)
    _stdin(monkeypatch, f"{STRONG_PASSWORD}\n")

    code = main(["create-admin", "--email", "twice@example.com", "--password-stdin"], migrated)

    assert code == 1
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Sh0rt-pass", "at least 15 characters"),
        ("Password2024!!!!", "most common passwords"),
        ("qwertyuiop12345", "most common passwords"),
        ("lovelace-1815-engine", "your email address"),
        ("abababababababab12", "different characters"),
        (unicodedata.normalize("NFD", "한국말각글"), "at least 15 characters"),
    ],
)
def test_create_admin_refuses_weak_passwords(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    password: str,
    reason: str,
) -> None:
    _stdin(monkeypatch, f"{password}\n")
    settings = build_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")

    with pytest.raises(SystemExit) as exit_info:
        main(["create-admin", "--email", "lovelace@example.com", "--password-stdin"], settings)

    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "password refused:" in error
    assert reason in error
    assert password not in error


def test_create_admin_without_a_terminal_needs_a_password_source(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _stdin(monkeypatch, "")
    settings = build_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")

    with pytest.raises(SystemExit):
        main(["create-admin", "--email", "ops@example.com"], settings)

    assert "--password-stdin" in capsys.readouterr().err


def test_create_admin_takes_the_password_from_the_environment(
    migrated: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, STRONG_PASSWORD)

    assert main(["create-admin", "--email", "env@example.com"], migrated) == 0
    assert asyncio.run(_load(migrated, "env@example.com")) is not None
