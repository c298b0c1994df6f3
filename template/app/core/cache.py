"""A small key-value cache with expiry: Redis when configured, in-process otherwise.

Everything the service keeps outside the database (deny-lists, one-time tokens,
cached reads) goes through this interface, so the zero-infrastructure
development mode and a multi-instance production deployment run the same code.

Redis may be one server, a Sentinel group's primary or a Cluster (`app.core.redis_client`).
A Cluster spreads keys over hash slots and runs a command only on keys of one slot: reads
of several keys are split into one command per slot, sent in the same round trip, and
keys read together name a common hash tag (`hash_tag`) so that they take one command.
"""

import asyncio
import hashlib
import time
from collections.abc import Sequence
from typing import Protocol, cast

from redis.asyncio import RedisCluster
from redis.exceptions import NoScriptError, RedisError
from redis.typing import EncodableT

from app.core.auto_pipeline import AutoPipeline
from app.core.config import Settings
from app.core.redis_client import (
    RedisClient,
    close_redis_client,
    create_redis_client,
    retry_on_dead_connection,
)
from app.core.timeouts import REDIS_CONNECT_TIMEOUT_SECONDS, REDIS_SOCKET_TIMEOUT_SECONDS


class Cache(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def get_many(self, *keys: str) -> list[str | None]:
        """Several values in one round trip."""
        ...

    async def get_many_and_count(
        self, keys: Sequence[str], counter: str, ttl_seconds: int
    ) -> tuple[list[str | None], int]:
        """Read `keys` and increment `counter` in the same round trip.

        The counter starts at 1 and expires `ttl_seconds` after its first increment.
        Returns the values and the counter's new value.
        """
        ...

    async def set(self, key: str, value: str, ttl_seconds: int | None = None) -> None: ...

    async def add(self, key: str, value: str, ttl_seconds: int | None = None) -> bool:
        """Set the value only if the key has none; whether it was set (atomic)."""
        ...

    async def delete(self, *keys: str) -> int: ...

    async def pop(self, key: str) -> str | None:
        """Return and remove a value atomically (single-use tokens)."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def hash_tag(name: str) -> str:
    """`name` as a Redis Cluster hash tag: keys that contain the same one (and no `{`
    before it) are kept in one hash slot, so one command may read them together (Redis
    Cluster specification, "Hash tags"). One server ignores it."""
    return "{" + name + "}"


# What a failed ping raises: the server refused, timed out or is gone.
REDIS_UNREACHABLE = (RedisError, OSError)

# One command (EVALSHA), so atomic; works on any Redis version (no EXPIRE NX).
_GET_MANY_AND_COUNT = """
local values = {}
if #KEYS > 1 then
    values = redis.call('MGET', unpack(KEYS, 1, #KEYS - 1))
end
local count = redis.call('INCR', KEYS[#KEYS])
if count == 1 then
    redis.call('EXPIRE', KEYS[#KEYS], ARGV[1])
end
values[#values + 1] = count
return values
"""
# The name Redis knows the script by (SHA-1 is what EVALSHA uses, not a security measure).
_GET_MANY_AND_COUNT_SHA = hashlib.sha1(
    _GET_MANY_AND_COUNT.encode(), usedforsecurity=False
).hexdigest()


class RedisCache:
    def __init__(self, client: RedisClient, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix
        # What every request reads (and counts) goes out in one pipeline with the same
        # commands of the other requests in flight; the rarer writes go on their own.
        self._reads = AutoPipeline(client)
        self._cluster = client if isinstance(client, RedisCluster) else None

    async def get(self, key: str) -> str | None:
        # decode_responses=True: the client returns str, which its type hints cannot express.
        return cast(str | None, await self._reads.execute("GET", self.prefix + key))

    async def get_many(self, *keys: str) -> list[str | None]:
        return await self._get_names([self.prefix + key for key in keys])

    async def get_many_and_count(
        self, keys: Sequence[str], counter: str, ttl_seconds: int
    ) -> tuple[list[str | None], int]:
        names = [self.prefix + key for key in keys]
        counted = self.prefix + counter
        if self._cluster is None:
            return await self._count(names, counted, ttl_seconds)
        # The script takes the keys of the counter's slot; the others are read beside it.
        slot = self._cluster.keyslot(counted)
        beside = [index for index, name in enumerate(names) if self._cluster.keyslot(name) != slot]
        along = [index for index in range(len(names)) if index not in beside]
        (read_along, count), read_beside = await asyncio.gather(
            self._count([names[index] for index in along], counted, ttl_seconds),
            self._get_names([names[index] for index in beside]),
        )
        return _in_order(len(names), [(along, read_along), (beside, read_beside)]), count

    async def _get_names(self, names: list[str]) -> list[str | None]:
        """The values of the keys `names` (prefixed): one MGET, or on a Cluster one per
        hash slot, queued together."""
        if not names:
            return []
        if self._cluster is None:
            return cast(list[str | None], await self._reads.execute("MGET", *names))
        by_slot: dict[int, list[int]] = {}
        for index, name in enumerate(names):
            by_slot.setdefault(self._cluster.keyslot(name), []).append(index)
        replies = await asyncio.gather(
            *(
                self._reads.queue("MGET", *(names[index] for index in indexes))
                for indexes in by_slot.values()
            )
        )
        return _in_order(len(names), list(zip(by_slot.values(), replies, strict=True)))

    async def _count(
        self, names: list[str], counted: str, ttl_seconds: int
    ) -> tuple[list[str | None], int]:
        arguments: list[EncodableT] = [len(names) + 1, *names, counted, ttl_seconds]
        try:
            replies = await self._reads.execute("EVALSHA", _GET_MANY_AND_COUNT_SHA, *arguments)
        except NoScriptError:  # a new or restarted server: EVAL runs and caches the script
            replies = await self._reads.execute("EVAL", _GET_MANY_AND_COUNT, *arguments)
        *values, count = replies
        return values, int(count)

    async def set(self, key: str, value: str, ttl_seconds: int | None = None) -> None:
        await self.client.set(self.prefix + key, value, ex=ttl_seconds)

    async def add(self, key: str, value: str, ttl_seconds: int | None = None) -> bool:
        return bool(await self.client.set(self.prefix + key, value, ex=ttl_seconds, nx=True))

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        deleted: int = await self.client.delete(*(self.prefix + key for key in keys))
        return deleted

    async def pop(self, key: str) -> str | None:
        return cast(str | None, await self.client.getdel(self.prefix + key))

    async def ping(self) -> bool:
        """Whether the Redis answers; for a Cluster, whether every primary answers and
        every slot is served (one node's answer says nothing of the others' slots)."""
        try:
            if isinstance(self.client, RedisCluster):
                answered = await self.client.ping(target_nodes=RedisCluster.PRIMARIES)
                info = await self.client.cluster_info()
                return bool(answered) and info.get("cluster_state") == "ok"
            return bool(await self.client.ping())
        except REDIS_UNREACHABLE:
            return False

    async def close(self) -> None:
        await close_redis_client(self.client)


def _in_order(size: int, groups: list[tuple[list[int], list[str | None]]]) -> list[str | None]:
    """Values read in groups, back in the order of their keys: each group pairs the
    indexes of its keys with their values."""
    values: list[str | None] = [None] * size
    for indexes, read in groups:
        for index, value in zip(indexes, read, strict=True):
            values[index] = value
    return values


class MemoryCache:
    """In-process cache for development and tests without Redis (one process only)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, float | None]] = {}

    def _live(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at is not None and expires_at <= time.monotonic():
            del self._entries[key]
            return None
        return value

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def get_many(self, *keys: str) -> list[str | None]:
        return [self._live(key) for key in keys]

    async def get_many_and_count(
        self, keys: Sequence[str], counter: str, ttl_seconds: int
    ) -> tuple[list[str | None], int]:
        values = [self._live(key) for key in keys]
        count = int(self._live(counter) or 0) + 1
        if count == 1:
            await self.set(counter, "1", ttl_seconds)
        else:  # keeps the expiry of the first increment
            self._entries[counter] = (str(count), self._entries[counter][1])
        return values, count

    async def set(self, key: str, value: str, ttl_seconds: int | None = None) -> None:
        expires_at = time.monotonic() + ttl_seconds if ttl_seconds is not None else None
        self._entries[key] = (value, expires_at)

    async def add(self, key: str, value: str, ttl_seconds: int | None = None) -> bool:
        if self._live(key) is not None:
            return False
        await self.set(key, value, ttl_seconds)
        return True

    async def delete(self, *keys: str) -> int:
        return sum(self._entries.pop(key, None) is not None for key in keys)

    async def pop(self, key: str) -> str | None:
        value = self._live(key)
        self._entries.pop(key, None)
        return value

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._entries.clear()


def create_cache(settings: Settings) -> Cache:
    if not settings.redis_url:
        return MemoryCache()
    client = create_redis_client(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        health_check_interval=30,
        # A dead pooled connection (Redis restarted) is replaced and the command resent,
        # as in the rate limiter's storage (app/core/rate_limit.py).
        retry=retry_on_dead_connection(),
    )
    return RedisCache(client, prefix=settings.cache_key_prefix)
