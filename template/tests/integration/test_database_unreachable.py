"""A PostgreSQL that cannot be reached answers 503 with Retry-After in the common error
shape, whatever way it is out of reach: a host name that no longer resolves (its
container is gone), a port nobody listens on (it is restarting), or the server process
of a pooled connection terminated (a restart under the pool)."""

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import httpx
import pytest
from sqlalchemy import make_url, text

from app.core.config import Settings
from app.core.resources import Resources
from app.main import create_app
from tests.helpers import API, direct_connection_only, error_of, server_engine

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"),
    reason="needs a PostgreSQL to make unreachable (set TEST_DATABASE_URL)",
)
# Looks a user up: the database's first use in the request.
LOGIN = {"email": "nobody@example.com", "password": "correct horse battery staple"}


@asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Resources]]:
    """An instance of the app on `settings`, and its resources (its pool among them)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, cast(Resources, app.state.resources)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


def _unavailable(response: httpx.Response) -> None:
    error = error_of(response, 503, "service_unavailable")
    assert error["message"] == "The database is unavailable; try again shortly"
    assert response.headers["Retry-After"] == "5"


@pytest.mark.parametrize(
    "address",
    ["no-such-host.invalid:5432", "127.0.0.1:{closed_port}"],
    ids=["unresolvable-host", "closed-port"],
)
async def test_a_database_that_cannot_be_reached_is_a_503_to_retry(
    settings: Settings, resources: Resources, address: str
) -> None:
    url = make_url(settings.database_url)
    host, port = address.format(closed_port=_closed_port()).split(":")
    unreachable = url.set(host=host, port=int(port)).render_as_string(hide_password=False)
    async with _client(settings.model_copy(update={"database_url": unreachable})) as (client, _):
        _unavailable(await client.post(f"{API}/auth/login", json=LOGIN))


@direct_connection_only
async def test_a_terminated_server_process_is_a_503_then_the_pool_recovers(
    settings: Settings, resources: Resources
) -> None:
    one_connection = settings.model_copy(
        update={
            "database_pool_size": 1,
            "database_max_overflow": 0,
            "database_ping_after_idle_seconds": 600,  # used at once: not checked first
        }
    )
    async with _client(one_connection) as (client, instance):
        assert (await client.post(f"{API}/auth/login", json=LOGIN)).status_code == 401
        async with instance.engine.connect() as pooled:  # the pool's one connection
            pid = (await pooled.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        admin = server_engine(settings.database_url)
        try:
            async with admin.connect() as connection:
                await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            await admin.dispose()

        _unavailable(await client.post(f"{API}/auth/login", json=LOGIN))
        assert (await client.post(f"{API}/auth/login", json=LOGIN)).status_code == 401
