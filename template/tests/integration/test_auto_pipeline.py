"""Commands issued together go out as one pipeline on a real Redis, each with its own answer.

On a Redis Cluster (TEST_REDIS_URL's redis+cluster:// form) the tests that count one
server's connections or scripts say so when skipped: a Cluster has one of each per node."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, ResponseError

from app.core.auto_pipeline import AutoPipeline
from app.core.cache import _GET_MANY_AND_COUNT_SHA as SCRIPT_SHA
from app.core.cache import RedisCache
from app.core.redis_client import RedisClient, create_redis_client, parse_redis_url

REDIS_URL = os.environ.get("TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(
    not REDIS_URL, reason="pipelining is a Redis client feature (set TEST_REDIS_URL)"
)


one_server_only = pytest.mark.skipif(
    REDIS_URL is not None and parse_redis_url(REDIS_URL).topology == "cluster",
    reason="counts one server's connections or scripts: a Redis Cluster has several",
)

CLIENT_NAME = f"auto-pipeline-test-{uuid.uuid4().hex}"


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


@pytest.fixture
async def client(prefix: str) -> AsyncIterator[RedisClient]:
    """A client of its own, named so that the server can say how many connections it opened."""
    assert REDIS_URL is not None
    redis = create_redis_client(REDIS_URL, decode_responses=True, client_name=CLIENT_NAME)
    yield redis
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def _open_connections(client: RedisClient) -> int:
    return sum(entry["name"] == CLIENT_NAME for entry in await client.client_list())


@one_server_only
async def test_commands_issued_together_share_one_connection(
    client: RedisClient, prefix: str
) -> None:
    await client.set(prefix + "key", "value")
    pipeline = AutoPipeline(client)

    replies = await asyncio.gather(*(pipeline.execute("GET", prefix + "key") for _ in range(20)))
    batched_connections = await _open_connections(client)
    await asyncio.gather(*(client.get(prefix + "key") for _ in range(20)))
    direct_connections = await _open_connections(client)

    assert replies == ["value"] * 20
    assert batched_connections == 1  # one pipeline, so one connection from the pool
    assert direct_connections > 1  # the same reads one by one need several at once


async def test_each_command_gets_its_own_reply_or_error(client: RedisClient, prefix: str) -> None:
    await client.set(prefix + "text", "not a number")
    pipeline = AutoPipeline(client)

    outcomes: list[object] = await asyncio.gather(
        pipeline.execute("GET", prefix + "text"),
        pipeline.execute("INCR", prefix + "text"),
        pipeline.execute("INCR", prefix + "counter"),
        return_exceptions=True,
    )

    text, failed, counted = outcomes
    assert text == "not a number"
    assert isinstance(failed, ResponseError)
    assert counted == 1


async def test_a_cancelled_caller_leaves_the_others_their_replies(
    client: RedisClient, prefix: str
) -> None:
    pipeline = AutoPipeline(client)
    first = asyncio.create_task(pipeline.execute("INCR", prefix + "counter"))
    gone = asyncio.create_task(pipeline.execute("INCR", prefix + "counter"))
    last = asyncio.create_task(pipeline.execute("INCR", prefix + "counter"))
    await asyncio.sleep(0)  # all three queued, the flush not yet run
    gone.cancel()

    replies = await asyncio.gather(first, last)

    assert gone.cancelled()
    # The cancelled command had been queued, so it still ran: only its caller left.
    assert list(replies) == [1, 3]
    assert await client.get(prefix + "counter") == "3"


async def test_after_a_cancelled_pipeline_later_commands_still_go_out(
    client: RedisClient, prefix: str
) -> None:
    pipeline = AutoPipeline(client)
    lost = asyncio.create_task(pipeline.execute("INCR", prefix + "counter"))
    await asyncio.sleep(0)  # the caller queues its command
    await asyncio.sleep(0)  # the queue is taken: its pipeline is a task not yet run
    assert pipeline._sending
    for sending in pipeline._sending:
        sending.cancel()  # as when the event loop closes

    with pytest.raises(asyncio.CancelledError):
        await lost
    assert await pipeline.execute("SET", prefix + "after", "sent") is True
    assert await client.get(prefix + "after") == "sent"


async def test_a_failed_connection_fails_every_command_of_the_batch() -> None:
    unreachable = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    pipeline = AutoPipeline(unreachable)
    try:
        outcomes = await asyncio.gather(
            pipeline.execute("GET", "a"), pipeline.execute("GET", "b"), return_exceptions=True
        )
    finally:
        await unreachable.aclose()

    assert [type(outcome) for outcome in outcomes] == [ConnectionError, ConnectionError]
    assert outcomes[0] is not outcomes[1]  # each caller gets an error of its own


@one_server_only
async def test_the_counting_script_is_loaded_again_after_a_script_flush(
    client: RedisClient, prefix: str
) -> None:
    cache = RedisCache(client, prefix=prefix)
    await cache.set("present", "value")
    assert await cache.get_many_and_count(["present"], "counter", 60) == (["value"], 1)

    await client.script_flush()  # as after a server restart

    assert await cache.get_many_and_count(["present"], "counter", 60) == (["value"], 2)
    assert await client.script_exists(SCRIPT_SHA) == [True]  # EVAL taught it again
