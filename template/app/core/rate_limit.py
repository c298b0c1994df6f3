"""Rate limits on the `limits` library: Redis when configured (shared by every
instance), in-process memory otherwise.

A moving window counts exactly, so a burst at a window edge cannot double the limit.
"""

import math
import time

from limits import parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from app.core.config import Settings
from app.exceptions import TooManyRequestsException


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


def create_rate_limiter(settings: Settings) -> RateLimiter:
    if not settings.redis_url:
        return RateLimiter(MemoryStorage())
    storage = RedisStorage(
        settings.redis_url.replace("redis", "async+redis", 1),
        implementation="redispy",
        key_prefix=f"{settings.cache_key_prefix}ratelimit",
    )
    return RateLimiter(storage)
