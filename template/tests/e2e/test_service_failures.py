"""Real services failing mid-request: Redis that stalls or drops (through a TCP proxy the
test controls), PostgreSQL that drops, and a database connection killed inside its
transaction with pg_terminate_backend. Each request answers 503 with Retry-After or
completes; never a 500.

What the service guarantees after Redis fails between a database commit and the cache
invalidation that follows it: the change is committed and the client gets a 503, and the
next read already sees it, since the cached snapshot of the user (profile, roles,
permissions) was dropped before the commit too (`user_service.commit_profile_change`,
`commit_access_change`). The tests below hold the service to that.
"""

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.redis_client import parse_redis_url
from app.core.resources import Resources
from app.core.timeouts import worst_cases
from app.models.article import Article
from app.models.user import User
from tests.faults import FaultyProxy
from tests.helpers import (
    API,
    app_through,
    error_of,
    login,
    login_as,
    register_user,
    role_id,
    unique_email,
)

REDIS_URL = os.environ.get("TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(
    not (os.environ.get("TEST_DATABASE_URL") and REDIS_URL),
    reason="fails real services: set TEST_DATABASE_URL and TEST_REDIS_URL",
)
# The cache's socket timeout (app/core/cache.py), plus slack for a busy machine: a bound
# on how long a stalled Redis may hold a request, not a measurement.
NO_HANG = 2 + 5


def assert_unavailable(response: httpx.Response) -> None:
    error_of(response, 503, "service_unavailable")
    assert response.headers["Retry-After"]


@pytest.fixture
async def redis_proxy() -> AsyncIterator[FaultyProxy]:
    if REDIS_URL and parse_redis_url(REDIS_URL).topology != "server":
        # A Sentinel group's or Cluster's clients connect where the sentinels or nodes say.
        pytest.skip("a proxy stands in front of one Redis server, not a Sentinel group or Cluster")
    server = urlsplit(REDIS_URL or "")
    proxy = await FaultyProxy(server.hostname or "127.0.0.1", server.port or 6379).start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def database_proxy(settings: Settings) -> AsyncIterator[FaultyProxy]:
    url = make_url(settings.database_url)
    proxy = await FaultyProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield proxy
    await proxy.close()


def redis_url_through(proxy: FaultyProxy) -> str:
    server = urlsplit(REDIS_URL or "")
    return server._replace(netloc=f"{server.hostname}:{proxy.port}").geturl()


@pytest.mark.parametrize("fault", ["stall", "trickle"])
async def test_a_stalled_redis_answers_503_within_its_timeout(
    settings: Settings, redis_proxy: FaultyProxy, auth_headers: dict[str, str], fault: str
) -> None:
    """Silent, or answering a byte every 0.3 s (never silent for a read timeout): the
    command's timeout bounds the whole answer, not each read."""
    async with app_through(settings, redis_url=redis_url_through(redis_proxy)) as client:
        me = f"{API}/users/me"
        assert (await client.get(me, headers=auth_headers)).status_code == 200
        if fault == "stall":
            redis_proxy.stall()
        else:
            redis_proxy.trickle(0.3)
        async with asyncio.timeout(NO_HANG):
            stalled = await client.get(me, headers=auth_headers)
        redis_proxy.resume()
        recovered = await client.get(me, headers=auth_headers)

    assert_unavailable(stalled)
    assert recovered.status_code == 200


async def test_redis_dropping_mid_request_answers_503_or_completes(
    settings: Settings, redis_proxy: FaultyProxy, auth_headers: dict[str, str]
) -> None:
    async with app_through(settings, redis_url=redis_url_through(redis_proxy)) as client:
        me = f"{API}/users/me"
        assert (await client.get(me, headers=auth_headers)).status_code == 200
        redis_proxy.stall()  # the next command is sent and waits for its reply...
        in_flight = asyncio.create_task(client.get(me, headers=auth_headers))
        await asyncio.sleep(0.3)
        redis_proxy.drop()  # ...when the connection dies under it
        redis_proxy.resume()
        async with asyncio.timeout(NO_HANG):
            dropped = await in_flight
        after = await client.get(me, headers=auth_headers)

    assert dropped.status_code in (200, 503), dropped.text
    if dropped.status_code == 503:
        assert_unavailable(dropped)
    assert after.status_code == 200


async def test_requests_after_redis_restarted_are_served(
    settings: Settings, redis_proxy: FaultyProxy, auth_headers: dict[str, str]
) -> None:
    """A restart kills every pooled connection, the cache client's and the rate limiter's
    storage's (a login attempt is counted there); Redis answering again, no request may
    fail on one of them (each once got a 503 after Redis was back)."""

    def requests(client: httpx.AsyncClient) -> list[Any]:
        me = [client.get(f"{API}/users/me", headers=auth_headers) for _ in range(8)]
        # Wrong passwords of unknown accounts: each counted by the limiter, refused with 401.
        logins = [
            client.post(
                f"{API}/auth/login", json={"email": unique_email("nobody"), "password": "wrong-1"}
            )
            for _ in range(8)
        ]
        return me + logins

    expected = [200] * 8 + [401] * 8
    async with app_through(settings, redis_url=redis_url_through(redis_proxy)) as client:
        warm = await asyncio.gather(*requests(client))
        assert [response.status_code for response in warm] == expected, warm[-1].text
        redis_proxy.drop()  # the restart: every open connection is reset...
        redis_proxy.resume()  # ...and Redis accepts new ones at once
        after = await asyncio.gather(*requests(client))

    failed = [response.text for response in after if response.status_code not in (200, 401)]
    assert [response.status_code for response in after] == expected, failed


@asynccontextmanager
async def on_commit(action: Callable[[], None]) -> AsyncIterator[None]:
    """Run `action` right after the next database commit of any session."""

    done: list[bool] = []

    def once(_session: Session) -> None:
        if not done:
            done.append(True)
            action()

    event.listen(Session, "after_commit", once)
    try:
        yield
    finally:
        event.remove(Session, "after_commit", once)


async def test_redis_dropping_between_commit_and_invalidation_serves_no_stale_profile(
    settings: Settings, resources: Resources, redis_proxy: FaultyProxy
) -> None:
    async with app_through(settings, redis_url=redis_url_through(redis_proxy)) as client:
        user = await register_user(client, email=unique_email("stale"), full_name="Before")
        headers = await login(client, user["email"])
        assert (await client.get(f"{API}/users/me", headers=headers)).json()["full_name"] == (
            "Before"
        )

        async with on_commit(redis_proxy.drop):
            updated = await client.patch(
                f"{API}/users/me", headers=headers, json={"full_name": "After"}
            )
        redis_proxy.resume()
        read_back = await client.get(f"{API}/users/me", headers=headers)

    assert_unavailable(updated)  # committed, but the client is told to retry, not 500
    async with resources.session_factory() as db:
        stored = await db.scalar(select(User.full_name).where(User.email == user["email"]))
    assert stored == "After"
    # The snapshot was dropped before the commit: the next read rebuilds it.
    assert read_back.json()["full_name"] == "After"


async def test_redis_dropping_between_commit_and_invalidation_serves_no_stale_permissions(
    settings: Settings, resources: Resources, redis_proxy: FaultyProxy
) -> None:
    async with app_through(settings, redis_url=redis_url_through(redis_proxy)) as client:
        admin = await login_as(client, resources, "admin")
        user = await register_user(client, email=unique_email("demoted"))
        editor = await role_id(resources, "editor")
        given = await client.put(f"{API}/users/{user['id']}/roles/{editor}", headers=admin)
        assert given.status_code == 200, given.text
        headers = await login(client, user["email"])
        assert (
            "articles:moderate"
            in (await client.get(f"{API}/users/me", headers=headers)).json()["permissions"]
        )

        async with on_commit(redis_proxy.drop):
            taken = await client.delete(f"{API}/users/{user['id']}/roles/{editor}", headers=admin)
        redis_proxy.resume()
        read_back = await client.get(f"{API}/users/me", headers=headers)

    assert_unavailable(taken)
    assert "articles:moderate" not in read_back.json()["permissions"]


async def test_postgres_dropping_mid_request_answers_503_then_recovers(
    settings: Settings, database_proxy: FaultyProxy, auth_headers: dict[str, str]
) -> None:
    url = make_url(settings.database_url).set(port=database_proxy.port)
    proxied = url.render_as_string(hide_password=False)
    async with app_through(settings, database_url=proxied) as client:
        assert (await client.get(f"{API}/users/me", headers=auth_headers)).status_code == 200
        database_proxy.stall()
        in_flight = asyncio.create_task(
            client.post(f"{API}/articles", headers=auth_headers, json={"title": "Lost"})
        )
        await asyncio.sleep(0.3)
        database_proxy.drop()
        database_proxy.resume()
        async with asyncio.timeout(NO_HANG):
            dropped = await in_flight
        after = await client.post(f"{API}/articles", headers=auth_headers, json={"title": "Ok"})

    assert_unavailable(dropped)
    assert after.status_code == 201, after.text


@pytest.mark.parametrize("fault", ["stall", "trickle"])
async def test_a_stalled_postgres_answers_503_within_its_timeouts(
    settings: Settings, database_proxy: FaultyProxy, auth_headers: dict[str, str], fault: str
) -> None:
    """A database that keeps its connections open and stops answering, or answers a byte
    every 0.3 s: the statement in flight times out (its connection is replaced), and so
    does opening another. Short timeouts keep the test quick; that the defaults stay
    within the timeout budget is tests/unit/test_timeouts.py's."""
    quick = {
        "database_pool_timeout": 1.0,
        "database_connect_timeout_seconds": 1.0,
        "database_statement_timeout_seconds": 1.0,
    }
    url = make_url(settings.database_url).set(port=database_proxy.port)
    proxied = url.render_as_string(hide_password=False)
    async with app_through(settings, database_url=proxied, **quick) as client:
        files = f"{API}/files"  # a list read from the database, never from the cache
        assert (await client.get(files, headers=auth_headers)).status_code == 200
        if fault == "stall":
            database_proxy.stall()
        else:
            database_proxy.trickle(0.3)
        answers = []
        for _ in range(2):  # on the pooled connection, then on a new one
            started = time.monotonic()
            response = await client.get(files, headers=auth_headers)
            answers.append((response, time.monotonic() - started))
        database_proxy.resume()
        recovered = await client.get(files, headers=auth_headers)

    bound = worst_cases(settings.model_copy(update=quick))["database"]
    for response, seconds in answers:
        assert_unavailable(response)
        assert seconds < bound, f"{seconds:.1f} s, past the {bound} s bound"
    assert recovered.status_code == 200


async def test_a_connection_terminated_mid_transaction_answers_503_and_writes_nothing(
    client: httpx.AsyncClient, resources: Resources, auth_headers: dict[str, str]
) -> None:
    """The backend serving the request is killed (pg_terminate_backend) just before the
    INSERT of its transaction: a real lost connection, not a raised exception."""
    engine = resources.engine.sync_engine

    done: list[bool] = []

    def terminate_before_insert(
        connection: Any, cursor: Any, statement: str, *_: Any, **__: Any
    ) -> None:
        if statement.startswith("INSERT INTO articles") and not done:
            done.append(True)
            dbapi_connection = connection.connection.dbapi_connection
            # The server process ends under its own query: what fails next is the INSERT.
            # pg_backend_pid(), not the id the connection was given when it opened: behind
            # a pooler that one is the pooler's.
            with contextlib.suppress(Exception):
                dbapi_connection.cursor().execute("SELECT pg_terminate_backend(pg_backend_pid())")

    event.listen(engine, "before_cursor_execute", terminate_before_insert)
    try:
        response = await client.post(
            f"{API}/articles", headers=auth_headers, json={"title": "Never stored"}
        )
    finally:
        event.remove(engine, "before_cursor_execute", terminate_before_insert)
    after = await client.post(f"{API}/articles", headers=auth_headers, json={"title": "Stored"})

    assert_unavailable(response)
    assert after.status_code == 201, after.text
    async with resources.session_factory() as db:
        titles = (await db.scalars(select(Article.title))).all()
        assert titles == ["Stored"]
        assert await db.scalar(select(func.count()).select_from(Article)) == 1
