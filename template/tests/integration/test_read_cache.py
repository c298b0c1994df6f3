"""The read-through cache, on the configured cache (Redis or in-process)."""

import pytest

from app.core.read_cache import GENERATION_TTL_SECONDS, ReadCache
from app.core.resources import Resources


@pytest.fixture
def reads(resources: Resources) -> ReadCache:
    return ReadCache(resources.cache, "things", ttl_seconds=60)


class Loader:
    def __init__(self, value: str | None) -> None:
        self.value = value
        self.calls = 0

    async def __call__(self) -> str | None:
        self.calls += 1
        return self.value


async def test_a_value_is_loaded_once_then_served_from_the_cache(reads: ReadCache) -> None:
    load = Loader("v1")

    assert await reads.get_or_load("a", load) == "v1"
    assert await reads.get_or_load("a", load) == "v1"
    assert load.calls == 1


async def test_invalidate_drops_one_key(reads: ReadCache) -> None:
    await reads.get_or_load("a", Loader("a1"))
    await reads.get_or_load("b", Loader("b1"))

    await reads.invalidate("a")

    assert await reads.get_or_load("a", Loader("a2")) == "a2"
    assert await reads.get_or_load("b", Loader("b2")) == "b1"


async def test_invalidate_all_drops_the_namespace_only(
    reads: ReadCache, resources: Resources
) -> None:
    others = ReadCache(resources.cache, "others", ttl_seconds=60)
    await reads.get_or_load("a", Loader("a1"))
    await others.get_or_load("a", Loader("other1"))

    await reads.invalidate_all()

    assert await reads.get_or_load("a", Loader("a2")) == "a2"
    assert await others.get_or_load("a", Loader("other2")) == "other1"


async def test_a_read_that_raced_a_write_is_never_served_afterwards(reads: ReadCache) -> None:
    async def load_old_while_a_write_lands() -> str:
        # The reader has fetched the old row; the writer commits and invalidates before
        # the reader stores it.
        await reads.invalidate("a")
        return "old"

    assert await reads.get_or_load("a", load_old_while_a_write_lands) == "old"

    assert await reads.get_or_load("a", Loader("new")) == "new"


async def test_absence_is_not_cached(reads: ReadCache) -> None:
    missing = Loader(None)

    assert await reads.get_or_load("a", missing) is None
    assert await reads.get_or_load("a", missing) is None
    assert missing.calls == 2


def test_entries_must_expire_before_their_generation(resources: Resources) -> None:
    with pytest.raises(ValueError, match="expire before"):
        ReadCache(resources.cache, "things", ttl_seconds=GENERATION_TTL_SECONDS)
