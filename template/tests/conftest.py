"""Shared fixtures: one app per session, a clean database and cache for every test.

Backends are chosen by environment variables:

- default (nothing set): a SQLite file in a temporary directory and the in-process
  `MemoryCache`; needs no running service.
- `TEST_DATABASE_URL` (e.g. `postgresql+asyncpg://postgres@127.0.0.1:5432/test`): the
  server to use. A fresh database `test_<slug>_<random>` is created on it for the session
  and dropped (WITH (FORCE)) at the end; the database named in the URL is only used to
  connect for CREATE/DROP DATABASE.
- `TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379/0`): a real Redis. Every run uses its
  own key prefix `test:<uuid>:`, and after each test only keys with that prefix are
  deleted (the server may be shared, so never FLUSHDB).

The header of the pytest report says which backends ran. Tables are created once with
`Base.metadata.create_all` and seeded as a deploy does (`app.cli seed`); after each test
that used the app, every row is deleted, the seeded rows are restored and the cache is
emptied, so every test starts from a freshly deployed database, in any order.
"""

import os
import re
import tomllib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, Table, event, make_url, select, text
from sqlalchemy.engine import ExecutionContext
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.expression import TableClause

from app.core.cache import Cache, MemoryCache, RedisCache
from app.core.config import Settings
from app.core.resources import Resources
from app.main import create_app
from app.models import Base
from app.services.rbac_seed import seed
from tests.helpers import AppFactory, build_settings, login, register_user, unique_email

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SEEDED_TABLES = {"features", "actions", "permissions", "roles", "role_permissions"}
SeededRows = list[tuple[Table, list[dict[str, Any]]]]


def _database_server_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL") or None


def _redis_url() -> str | None:
    return os.environ.get("TEST_REDIS_URL") or None


def pytest_report_header(config: pytest.Config) -> str:
    server_url = _database_server_url()
    database = make_url(server_url).get_backend_name() if server_url else "sqlite"
    cache = "redis" if _redis_url() else "memory"
    return f"backends: database={database} cache={cache}"


def _test_database_name() -> str:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["name"]
    slug = re.sub(r"[^a-z0-9]+", "_", project.lower()).strip("_")[:30]
    return f"test_{slug}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    server_url = _database_server_url()
    if server_url is None:
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    name = _test_database_name()
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (make_url(server_url).set(database=name).render_as_string(hide_password=False))
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return build_settings(
        database_url=database_url,
        redis_url=_redis_url(),
        cache_key_prefix=f"test:{uuid.uuid4().hex}:",
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The application with its lifespan running, the schema created and seeded."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        resources = cast(Resources, application.state.resources)
        async with resources.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        # What a deploy runs after migrating: the access-control catalog and default roles.
        async with resources.session_factory() as session:
            await seed(session, resources.cache)
        yield application


@pytest.fixture(scope="session")
async def seeded_rows(app: FastAPI) -> SeededRows:
    """The rows the seed wrote, restored after every test (cheaper than seeding again)."""
    resources = cast(Resources, app.state.resources)
    async with resources.engine.connect() as connection:
        return [
            (table, [dict(row._mapping) for row in await connection.execute(select(table))])
            for table in Base.metadata.sorted_tables
            if table.name in SEEDED_TABLES
        ]


async def _clear_cache(cache: Cache) -> None:
    if isinstance(cache, RedisCache):
        keys = [key async for key in cache.client.scan_iter(match=f"{cache.prefix}*", count=500)]
        if keys:
            await cache.client.delete(*keys)
    elif isinstance(cache, MemoryCache):
        cache._entries.clear()


@pytest.fixture(scope="session")
def written_tables() -> Iterator[set[str]]:
    """Names of the tables any engine wrote to (INSERT, UPDATE, DELETE) since last cleared."""
    written: set[str] = set()

    def note(*_: Any, context: ExecutionContext, **__: Any) -> None:
        statement = getattr(context.compiled, "statement", None)
        # INSERT, UPDATE or DELETE of a table
        if isinstance(statement, UpdateBase) and isinstance(statement.table, TableClause):
            written.add(statement.table.name)

    event.listen(Engine, "before_cursor_execute", note, named=True)
    yield written
    event.remove(Engine, "before_cursor_execute", note)


@pytest.fixture
async def resources(
    app: FastAPI, seeded_rows: SeededRows, written_tables: set[str]
) -> AsyncIterator[Resources]:
    """The app's resources; afterwards the database is back to freshly seeded, the cache empty.

    The seeded rows are only deleted and restored when the test wrote to their tables:
    most tests do not, and the restore is the costly part of the cleanup.
    """
    app_resources = cast(Resources, app.state.resources)
    written_tables.clear()
    yield app_resources
    reseed = not written_tables.isdisjoint(SEEDED_TABLES)
    async with app_resources.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if reseed or table.name not in SEEDED_TABLES:
                await connection.execute(table.delete())
        if reseed:
            for table, rows in seeded_rows:
                await connection.execute(table.insert(), rows)
    await _clear_cache(app_resources.cache)


@pytest.fixture
async def db_session(resources: Resources) -> AsyncIterator[AsyncSession]:
    async with resources.session_factory() as session:
        yield session


@pytest.fixture
async def client(app: FastAPI, resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http_client:
        yield http_client


@pytest.fixture
def app_factory(settings: Settings, resources: Resources) -> AppFactory:
    """Start more instances of the app on the same database and cache (scale-out tests)."""

    @asynccontextmanager
    async def open_instance() -> AsyncIterator[httpx.AsyncClient]:
        instance = create_app(settings)
        async with instance.router.lifespan_context(instance):
            transport = httpx.ASGITransport(app=instance)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client

    return open_instance


@pytest.fixture
async def auth_headers(client: httpx.AsyncClient) -> dict[str, str]:
    """Bearer headers of a freshly registered user."""
    user = await register_user(client, email=unique_email("author"))
    return await login(client, user["email"])


@pytest.fixture
async def other_auth_headers(client: httpx.AsyncClient) -> dict[str, str]:
    """Bearer headers of a second, unrelated user (for ownership checks)."""
    user = await register_user(client, email=unique_email("other"))
    return await login(client, user["email"])
