"""Alembic environment: async engine, URL from the app's settings.

A caller (the test suite, a CLI) may pass an open connection in
`config.attributes["connection"]`, or a URL via `-x database_url=...` or the
`sqlalchemy.url` option; otherwise DATABASE_MIGRATION_URL from the settings is used, or
DATABASE_URL when that is unset. Statements are prepared as DATABASE_TRANSACTION_POOLING
says (`app.core.database`), so migrating through a transaction pooler works too.
"""

import asyncio
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import get_settings
from app.core.database import statement_connect_args
from app.models import Base
from app.models.base import UTCDateTime

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    settings = get_settings()
    return (
        context.get_x_argument(as_dictionary=True).get("database_url")
        or config.get_main_option("sqlalchemy.url")
        or settings.database_migration_url
        or settings.database_url
    )


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Migrations must not import app code, which changes over time: write our column
    # types as the plain SQLAlchemy types they store.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    url = database_url()
    engine = create_async_engine(url, connect_args=statement_connect_args(get_settings(), url))
    async with engine.connect() as connection:
        await connection.run_sync(run_migrations)
    await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
elif (connection := config.attributes.get("connection")) is not None:
    run_migrations(connection)
else:
    asyncio.run(run_async_migrations())
