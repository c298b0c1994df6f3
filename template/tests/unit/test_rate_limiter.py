"""The login and email-link limits (`app.core.rate_limit.RateLimiter`: the `limits`
library's moving window), on the in-process storage; and the Redis client of its Redis
storage, for each form of REDIS_URL."""

import asyncio

import pytest
from limits.aio.storage import MemoryStorage
from redis.asyncio import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.core.config import Settings
from app.core.rate_limit import RateLimiter, create_rate_limiter
from app.exceptions import TooManyRequestsException


async def _refused(limiter: RateLimiter, limit: str, *identifiers: str) -> int:
    """The Retry-After of an attempt that must be refused."""
    with pytest.raises(TooManyRequestsException) as refused:
        await limiter.hit(limit, *identifiers)
    return refused.value.retry_after_seconds


async def test_each_attempt_counts_for_its_identifiers_alone() -> None:
    limiter = RateLimiter(MemoryStorage())
    await limiter.hit("2/minute", "login-ip", "192.0.2.1")
    await limiter.hit("2/minute", "login-ip", "192.0.2.1")
    await limiter.hit("2/minute", "login-ip", "192.0.2.2")  # another address: its own count

    assert 59 <= await _refused(limiter, "2/minute", "login-ip", "192.0.2.1") <= 60
    await limiter.hit("2/minute", "login-ip", "192.0.2.2")


async def test_retry_after_counts_from_the_oldest_attempt_in_the_window() -> None:
    limiter = RateLimiter(MemoryStorage())
    await limiter.hit("1/10 seconds", "email-link-account", "a@example.com")
    await asyncio.sleep(1.1)

    # The window frees up 10 s after that attempt, not 10 s from now.
    assert 1 <= await _refused(limiter, "1/10 seconds", "email-link-account", "a@example.com") < 10


async def test_retry_after_is_a_whole_second_at_least() -> None:
    limiter = RateLimiter(MemoryStorage())
    await limiter.hit("1/second", "login-account", "a@example.com")

    assert await _refused(limiter, "1/second", "login-account", "a@example.com") == 1


async def test_clearing_forgets_the_attempts_of_those_identifiers() -> None:
    limiter = RateLimiter(MemoryStorage())
    await limiter.hit("1/minute", "login-account", "a@example.com")
    await limiter.hit("1/minute", "login-account", "b@example.com")

    await limiter.clear("1/minute", "login-account", "a@example.com")

    await limiter.hit("1/minute", "login-account", "a@example.com")
    assert 59 <= await _refused(limiter, "1/minute", "login-account", "b@example.com") <= 60


@pytest.mark.parametrize(
    "redis_url",
    [
        "redis://127.0.0.1:1/0",
        "redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster",
        "redis+cluster://127.0.0.1:1",
    ],
)
async def test_the_redis_storage_resends_a_command_once_after_a_dead_connection(
    settings: Settings, redis_url: str
) -> None:
    """After a Redis restart each pooled connection is dead: a command that meets one is
    resent on a new one (it failed a request with a 503), once, and never after a timeout."""
    limiter = create_rate_limiter(settings.model_copy(update={"redis_url": redis_url}))
    client = limiter._limiter.storage.bridge.storage  # type: ignore[attr-defined]
    if isinstance(client, RedisCluster):
        retry = client.retry  # the Cluster client's own policy
    else:  # one server, or a Sentinel group's primary: its connections'
        retry = client.connection_pool.connection_kwargs["retry"]
    attempts: list[int] = []

    async def failing(error: Exception, times: int) -> str:
        attempts.append(1)
        if len(attempts) <= times:
            raise error
        return "OK"

    async def nothing(_: Exception) -> None:
        return None

    assert await retry.call_with_retry(lambda: failing(RedisConnectionError(), 1), nothing) == "OK"
    attempts.clear()
    with pytest.raises(RedisConnectionError):
        await retry.call_with_retry(lambda: failing(RedisConnectionError(), 2), nothing)
    assert len(attempts) == 2
    attempts.clear()
    with pytest.raises(RedisTimeoutError):
        await retry.call_with_retry(lambda: failing(RedisTimeoutError(), 1), nothing)
    assert len(attempts) == 1
