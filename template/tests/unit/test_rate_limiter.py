"""The login and email-link limits (`app.core.rate_limit.RateLimiter`: the `limits`
library's moving window), on the in-process storage."""

import asyncio

import pytest
from limits.aio.storage import MemoryStorage

from app.core.rate_limit import RateLimiter
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
