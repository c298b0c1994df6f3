"""Rate limits, kept in Redis when configured (shared by every instance), in-process
memory otherwise.

Login and email links: the `limits` library's moving window, which counts exactly, so a
burst at a window edge cannot double the limit. The general limits on every API request
are further down.
"""

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from limits import RateLimitItem, parse
from limits.aio.storage import (
    MemoryStorage,
    RedisClusterStorage,
    RedisSentinelStorage,
    RedisStorage,
    Storage,
)
from limits.aio.strategies import MovingWindowRateLimiter

from app.core.config import Settings
from app.core.redis_client import parse_redis_url, retry_on_dead_connection
from app.core.timeouts import REDIS_CONNECT_TIMEOUT_SECONDS, REDIS_SOCKET_TIMEOUT_SECONDS
from app.exceptions import TooManyRequestsException

EndpointT = TypeVar("EndpointT", bound=Callable[..., Any])


class RateLimiter:
    def __init__(self, storage: Storage) -> None:
        self._limiter = MovingWindowRateLimiter(storage)

    async def hit(self, limit: str, *identifiers: str) -> None:
        """Count one attempt; raise 429 with Retry-After once the limit is used up."""
        item = parse(limit)
        if await self._limiter.hit(item, *identifiers):
            return
        stats = await self._limiter.get_window_stats(item, *identifiers)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise TooManyRequestsException(retry_after_seconds=retry_after)

    async def clear(self, limit: str, *identifiers: str) -> None:
        """Forget what was counted (a successful login clears its failures)."""
        await self._limiter.clear(parse(limit), *identifiers)


# REDIS_URL's schemes (`app.core.redis_client`) -> the `limits` scheme of the same Redis
# (limits strips its prefix again and hands the rest of the URL to redis-py untouched;
# its Sentinel and Cluster forms are REDIS_URL's).
_LIMITS_SCHEMES = {
    "redis": "async+redis",
    "rediss": "async+rediss",
    "unix": "async+redis+unix",
    "redis+sentinel": "async+redis+sentinel",
    "redis+cluster": "async+redis+cluster",
}


def limits_storage_url(redis_url: str) -> str:
    """`redis_url` (a form REDIS_URL accepts, validated by Settings) as a `limits` URL:
    only the scheme changes, so a socket path or query string stays as written."""
    scheme, separator, rest = redis_url.partition("://")
    return f"{_LIMITS_SCHEMES[scheme.lower()]}{separator}{rest}"


def create_rate_limiter(settings: Settings) -> RateLimiter:
    if not settings.redis_url:
        return RateLimiter(MemoryStorage())
    url = limits_storage_url(settings.redis_url)
    prefix = f"{settings.cache_key_prefix}ratelimit"
    # Without these redis-py waits for ever (app/core/timeouts.py).
    connect, read = REDIS_CONNECT_TIMEOUT_SECONDS, REDIS_SOCKET_TIMEOUT_SECONDS
    # redis-py's options, handed on by `limits`: the timeouts, and a command that meets a
    # dead pooled connection (Redis restarted) resent once on a new one, as the cache's
    # client does; without it each stale connection failed one request with a 503.
    redis_options: dict[str, Any] = {
        "socket_connect_timeout": connect,
        "socket_timeout": read,
        "retry": retry_on_dead_connection(),
    }
    storage: RedisStorage
    match parse_redis_url(settings.redis_url).topology:
        case "sentinel":
            storage = RedisSentinelStorage(
                url,
                implementation="redispy",
                key_prefix=prefix,
                # Counts are read from the primary only: a replica lags, or is the one gone.
                use_replicas=False,
                sentinel_kwargs={"socket_connect_timeout": connect, "socket_timeout": read},
                **redis_options,
            )
        case "cluster":
            storage = RedisClusterStorage(
                url,
                implementation="redispy",
                key_prefix=prefix,
                **redis_options,
            )
        case "server":
            storage = RedisStorage(
                url,
                implementation="redispy",
                key_prefix=prefix,
                **redis_options,
            )
    return RateLimiter(storage)


# General request limits -------------------------------------------------------------
#
# Every API request counts against one limit: its route's own (`@rate_limit`), else the
# default for an authenticated user or, without a valid login, for the client address.
# The counter is a sliding window estimated from two fixed windows: this window's count
# plus the last window's, weighted by how much of it the sliding window still covers.
# Two integers per caller, counted in the round trip that authenticates the request, and
# unlike a plain fixed window a burst at a window edge cannot reach twice the limit.
# Refused requests count too: a client that ignores Retry-After stays throttled.

ROUTE_LIMIT_ATTRIBUTE = "__rate_limit__"


@functools.lru_cache(maxsize=64)
def parse_limit(text: str) -> RateLimitItem:
    return parse(text)


@dataclass(frozen=True, slots=True)
class RouteLimit:
    """A route's own limit, counted per caller apart from the default one."""

    limit: str
    bucket: str


def rate_limit(limit: str) -> Callable[[EndpointT], EndpointT]:
    """Give a route its own limit per caller instead of the default, e.g.
    `@rate_limit("30/minute")` placed between `@router.post(...)` and the function."""
    parse_limit(limit)  # a typo fails at import, not on the first request

    def decorate(endpoint: EndpointT) -> EndpointT:
        setattr(endpoint, ROUTE_LIMIT_ATTRIBUTE, RouteLimit(limit, endpoint.__qualname__))
        endpoint.__doc__ = f"{endpoint.__doc__ or ''}\n\nRate limit: {limit} per caller.".strip()
        return endpoint

    return decorate


def route_limit(endpoint: object) -> RouteLimit | None:
    limit: RouteLimit | None = getattr(endpoint, ROUTE_LIMIT_ATTRIBUTE, None)
    return limit


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """Where a caller stands after this request; `retry_after_seconds` is set when refused."""

    limit: int
    remaining: int
    reset_seconds: int
    retry_after_seconds: int | None = None

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


@dataclass(frozen=True, slots=True)
class RequestWindow:
    """The counters one request is counted in: this window's and the previous one's."""

    limit: int
    seconds: int
    elapsed: float  # seconds into this window
    current_key: str
    previous_key: str

    @classmethod
    def at(cls, limit: str, caller: str, now: float) -> Self:
        item = parse_limit(limit)
        seconds = item.get_expiry()
        index = int(now // seconds)
        # The window length is part of the key: a changed limit starts fresh counters.
        base = f"ratelimit:{seconds}:{caller}:"
        return cls(
            item.amount, seconds, now - index * seconds, f"{base}{index}", f"{base}{index - 1}"
        )

    @property
    def ttl_seconds(self) -> int:
        return 2 * self.seconds  # still read as the previous window during the next one

    def status(self, previous: int, current: int) -> RateLimitStatus:
        """`current` includes this request."""
        weight = 1 - self.elapsed / self.seconds
        used = previous * weight + current
        reset = max(1, math.ceil(self.seconds - self.elapsed))
        remaining = max(0, math.floor(self.limit - used))
        if used <= self.limit + 1e-9:  # a retry exactly at Retry-After fits, float error or not
            return RateLimitStatus(self.limit, remaining, reset)
        # Refused, the quota comes back when one more request fits: RateLimit-Reset says
        # the same as Retry-After (draft-ietf-httpapi-ratelimit-headers: the seconds until
        # the quota resets), not the end of the fixed window the estimate slides over.
        retry_after = self._retry_after(previous, current, weight)
        return RateLimitStatus(self.limit, 0, retry_after, retry_after)

    def _retry_after(self, previous: int, current: int, weight: float) -> int:
        """Seconds until one more request fits, if the caller sends nothing meanwhile."""
        if current < self.limit:  # fits in this window once the previous one weighs less
            wait = self.seconds * (weight - (self.limit - current - 1) / previous)
        else:  # after this window ends, once its own count weighs less
            wait = self.seconds - self.elapsed + self.seconds * (1 - (self.limit - 1) / current)
        return max(1, math.ceil(wait))
