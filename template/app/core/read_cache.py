"""Read-through caching of expensive reads, invalidated by the code that writes.

    reads = ReadCache(cache, "articles", ttl_seconds=300)
    body = await reads.get_or_load(str(article_id), load_from_database)
    ...  # and after committing a change to that article:
    await reads.invalidate(str(article_id))

Deleting the entry on write is not enough: a reader that loaded the old row just
before the write could store it just after, and serve it until it expires. So each
key (and the namespace as a whole) has a generation, a random token the writer
replaces; an entry is stored with the generations read *before* loading and is
served only while they are still current. Once `invalidate` returns, no instance
can serve the old value, whatever the timing of concurrent readers.

That holds for values loaded from the primary. A read replica may be behind the write
that moved a generation, so a value loaded from one (`ReadSource`) is marked as such and
kept no longer than the replica may be behind (`app.core.replicas`); a caller who wrote
recently is never served a marked value: they load from the primary, and the entry they
store then serves everyone.
"""

import math
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

from app.core.cache import Cache, hash_tag
from app.core.replicas import ReadSource

# `str`, or `str | None` for reads that may find nothing.
ValueT = TypeVar("ValueT", bound=str | None)

# Longer than any entry lives: an entry must never outlive the generation it was
# tagged with, or a key whose generation expired could match it again.
GENERATION_TTL_SECONDS = 7 * 24 * 3600
# Appended to the tag of an entry loaded from a read replica.
FROM_REPLICA = "~replica"


class ReadCache:
    def __init__(self, cache: Cache, namespace: str, *, ttl_seconds: int) -> None:
        if ttl_seconds >= GENERATION_TTL_SECONDS:
            raise ValueError("entries must expire before their generation does")
        self.cache = cache
        self.namespace = namespace
        self.ttl_seconds = ttl_seconds

    async def get_or_load(
        self,
        key: str,
        load: Callable[[], Awaitable[ValueT]],
        source: ReadSource = ReadSource(),
    ) -> ValueT:
        """The cached value, or `load()`'s (cached unless None: absence is not cached).

        `source` is where `load` reads (`read_source(session)`): the primary unless said.
        """
        namespace_generation, key_generation, entry = await self.cache.get_many(
            self._generation_key(None), self._generation_key(key), self._entry_key(key)
        )
        tag = f"{namespace_generation or '-'}.{key_generation or '-'}"
        if entry is not None:
            entry_tag, _, cached = entry.partition("\n")
            if entry_tag == tag or (entry_tag == tag + FROM_REPLICA and not source.after_own_write):
                return cast(ValueT, cached)
        loaded = await load()
        if loaded is not None:
            ttl_seconds = self.ttl_seconds
            if source.staleness_seconds:  # loaded from a replica
                tag += FROM_REPLICA
                ttl_seconds = min(ttl_seconds, math.ceil(source.staleness_seconds))
            await self.cache.set(self._entry_key(key), f"{tag}\n{loaded}", ttl_seconds)
        return loaded

    async def invalidate(self, key: str) -> None:
        """Every cached read of `key` is stale from now on, on every instance."""
        await self._new_generation(self._generation_key(key))

    async def invalidate_all(self) -> None:
        """Every cached read in the namespace is stale from now on."""
        await self._new_generation(self._generation_key(None))

    async def _new_generation(self, generation_key: str) -> None:
        await self.cache.set(generation_key, uuid.uuid4().hex, GENERATION_TTL_SECONDS)

    # A key's generation and entry are tagged with the key: on a Redis Cluster they are
    # read in one command, and the namespace's generation in another beside it.
    def _generation_key(self, key: str | None) -> str:
        # None: the namespace's own generation.
        suffix = "" if key is None else f":{hash_tag(key)}"
        return f"reads:{self.namespace}:generation{suffix}"

    def _entry_key(self, key: str) -> str:
        return f"reads:{self.namespace}:entry:{hash_tag(key)}"
