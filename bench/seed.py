"""The benchmark's own PostgreSQL database and Redis keys: create, migrate, seed, clean up.

Nothing here touches data the harness did not create: the database has a fresh unique
name and is dropped at the end; Redis keys all carry the run's unique prefix and only
those are deleted (the server may be shared, so never FLUSHDB).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # ships no type information
import redis
from sqlalchemy import make_url

MIGRATE_TIMEOUT_S = 180
DB_TIMEOUT_S = 60


def app_url(server_url: str, database: str) -> str:
    """The service's DATABASE_URL (asyncpg driver) for `database` on `server_url`'s server."""
    url = make_url(server_url).set(drivername="postgresql+asyncpg", database=database)
    return url.render_as_string(hide_password=False)


def _dsn(url: str) -> str:
    # asyncpg takes a plain libpq-style URL, without SQLAlchemy's "+driver".
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _execute(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement, timeout=DB_TIMEOUT_S)
    finally:
        await connection.close()


def _admin_url(server_url: str) -> str:
    # Like the generated test suite: the database named in the URL is only connected to,
    # to run CREATE/DROP DATABASE ("postgres" when the URL names none).
    return app_url(server_url, make_url(server_url).database or "postgres")


def create_database(server_url: str) -> str:
    """Create a uniquely named database; return its name."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    # CREATE DATABASE cannot run in a transaction; asyncpg's execute() runs it in autocommit.
    asyncio.run(_execute(_admin_url(server_url), f'CREATE DATABASE "{name}"'))
    return name


def drop_database(server_url: str, name: str) -> None:
    # FORCE ends connections a killed server may have left behind (PostgreSQL 13+).
    asyncio.run(_execute(_admin_url(server_url), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def migrate(project: Path, database_url: str, env: dict[str, str]) -> None:
    """`alembic upgrade head` in the rendered project, as its Makefile's `migrate` does."""
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=project,
        env={**env, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=MIGRATE_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"alembic upgrade head failed:\n{result.stdout}\n{result.stderr}")


ARTICLE_CONTENT = "Benchmark article body. " * 40  # about 1 kB, a realistic short post

_SEED_ARTICLES = """
INSERT INTO articles (id, title, content, status, published_at, author_id, created_at, updated_at)
SELECT gen_random_uuid(), 'Benchmark article ' || n, $2, 'published',
       now() - n * interval '1 minute', u.id,
       now() - n * interval '1 minute', now() - n * interval '1 minute'
FROM generate_series(1, $3) AS n, users AS u
WHERE u.email = $1
"""


async def _seed_articles(database_url: str, author_email: str, count: int) -> int:
    connection = await asyncpg.connect(_dsn(database_url), timeout=10)
    try:
        status = await connection.execute(
            _SEED_ARTICLES, author_email, ARTICLE_CONTENT, count, timeout=DB_TIMEOUT_S
        )
        await connection.execute("ANALYZE", timeout=DB_TIMEOUT_S)  # realistic query plans
    finally:
        await connection.close()
    return int(status.split()[-1])  # "INSERT 0 <rows>"


def seed_articles(database_url: str, author_email: str, count: int) -> None:
    """`count` published articles by the user with `author_email`, in one statement."""
    inserted = asyncio.run(_seed_articles(database_url, author_email, count))
    if inserted != count:
        raise RuntimeError(f"seeded {inserted} articles instead of {count}: is the user there?")


def delete_drafts(database_url: str) -> None:
    """Drop the drafts POST /articles created, so every run lists the same 1,000 rows."""
    asyncio.run(_execute(database_url, "DELETE FROM articles WHERE status = 'draft'"))


_BUSY_CONNECTIONS = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'
"""


async def _busy_connections(database_url: str) -> int:
    connection = await asyncpg.connect(_dsn(database_url), timeout=10)
    try:
        return int(await connection.fetchval(_BUSY_CONNECTIONS, timeout=DB_TIMEOUT_S))
    finally:
        await connection.close()


def busy_connections(database_url: str) -> int:
    """Connections to the benchmark database running a query or holding a transaction open:
    requests the server is still working on after the client went away."""
    return asyncio.run(_busy_connections(database_url))


_SESSIONS = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


async def _sessions(database_url: str) -> int:
    connection = await asyncpg.connect(_dsn(database_url), timeout=10)
    try:
        return int(await connection.fetchval(_SESSIONS, timeout=DB_TIMEOUT_S))
    finally:
        await connection.close()


def sessions(database_url: str) -> int:
    """Connections to the benchmark database, idle or not (but this one)."""
    return asyncio.run(_sessions(database_url))


def delete_redis_keys(redis_url: str, prefix: str) -> int:
    """Delete every key starting with `prefix`; return how many there were."""
    client = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5)
    pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix) + "*"
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) == 500:
                deleted += int(client.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(client.delete(*batch))
    finally:
        client.close()
    return deleted


def check_redis(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
    finally:
        client.close()


def default_server_urls() -> tuple[str, str]:
    """PostgreSQL server and Redis URLs: the test suite's variables, else local defaults."""
    return (
        os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres",
        os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/0",
    )
