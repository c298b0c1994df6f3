"""Empty databases of their own for tests that migrate or run the CLI."""

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from sqlalchemy import make_url, text

from tests.helpers import server_engine

PROJECT_ROOT = Path(__file__).resolve().parents[2]


async def _admin(server_url: str, statement: str) -> None:
    engine = server_engine(server_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(statement))
    await engine.dispose()


@contextmanager
def empty_database(directory: Path) -> Iterator[str]:
    """A fresh SQLite file, or a fresh database on the TEST_DATABASE_URL server (dropped after)."""
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        yield f"sqlite+aiosqlite:///{directory / 'empty.db'}"
        return
    name = f"test_migrations_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", database_url)
    return config
