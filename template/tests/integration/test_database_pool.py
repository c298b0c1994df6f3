"""Pooled connections that a database restart dropped (here: their server process
terminated): checked and replaced before use once idle, at no cost while in use."""

import asyncio
import os

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.database import create_engine
from tests.helpers import direct_connection_only, server_engine

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("TEST_DATABASE_URL"),
        reason="connection pooling is PostgreSQL's (set TEST_DATABASE_URL)",
    ),
    direct_connection_only,
]


def _one_connection_pool(settings: Settings, ping_after_idle_seconds: float) -> AsyncEngine:
    return create_engine(
        settings.model_copy(
            update={
                "database_pool_size": 1,
                "database_max_overflow": 0,
                "database_ping_after_idle_seconds": ping_after_idle_seconds,
            }
        )
    )


async def _server_process(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        pid: int = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    return pid


async def _terminate(settings: Settings, pid: int) -> None:
    admin = server_engine(settings.database_url)
    try:
        async with admin.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await admin.dispose()


async def test_an_idle_connection_the_server_dropped_is_replaced_before_use(
    settings: Settings,
) -> None:
    engine = _one_connection_pool(settings, ping_after_idle_seconds=0.2)
    try:
        first = await _server_process(engine)
        await _terminate(settings, first)
        await asyncio.sleep(0.3)  # idle for longer than the threshold

        second = await _server_process(engine)  # no error: checked, replaced, used
    finally:
        await engine.dispose()

    assert second != first


async def test_a_connection_in_use_is_not_checked_and_recovers_after_one_failure(
    settings: Settings,
) -> None:
    # The price of skipping the check while busy: a connection dropped between two uses
    # fails the one request that gets it (a 503 to retry); the next gets a new one.
    engine = _one_connection_pool(settings, ping_after_idle_seconds=60)
    try:
        first = await _server_process(engine)
        await _terminate(settings, first)

        with pytest.raises(DBAPIError) as failure:
            await _server_process(engine)
        second = await _server_process(engine)
    finally:
        await engine.dispose()

    assert failure.value.connection_invalidated
    assert second != first
