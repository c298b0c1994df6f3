from types import SimpleNamespace

import pytest

from app.core import cache as cache_module
from app.core.cache import MemoryCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Control the cache's clock only (the event loop keeps the real one)."""
    fake = FakeClock()
    monkeypatch.setattr(cache_module, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


@pytest.fixture
def cache() -> MemoryCache:
    return MemoryCache()


async def test_get_returns_what_was_set(cache: MemoryCache) -> None:
    await cache.set("key", "value")

    assert await cache.get("key") == "value"
    assert await cache.get("missing") is None


async def test_set_overwrites(cache: MemoryCache) -> None:
    await cache.set("key", "old")
    await cache.set("key", "new")

    assert await cache.get("key") == "new"


async def test_value_expires_after_its_ttl(cache: MemoryCache, clock: FakeClock) -> None:
    await cache.set("key", "value", ttl_seconds=10)

    clock.advance(9.9)
    assert await cache.get("key") == "value"
    clock.advance(0.1)
    assert await cache.get("key") is None


async def test_value_without_ttl_never_expires(cache: MemoryCache, clock: FakeClock) -> None:
    await cache.set("key", "value")

    clock.advance(10**9)
    assert await cache.get("key") == "value"


async def test_pop_returns_a_value_only_once(cache: MemoryCache) -> None:
    await cache.set("token", "single-use")

    assert await cache.pop("token") == "single-use"
    assert await cache.pop("token") is None
    assert await cache.get("token") is None


async def test_pop_of_an_expired_value_returns_none(cache: MemoryCache, clock: FakeClock) -> None:
    await cache.set("token", "single-use", ttl_seconds=1)

    clock.advance(2)
    assert await cache.pop("token") is None


async def test_delete_counts_only_existing_keys(cache: MemoryCache) -> None:
    await cache.set("a", "1")
    await cache.set("b", "2")

    assert await cache.delete("a", "b", "missing") == 2
    assert await cache.delete() == 0
    assert await cache.get("a") is None


async def test_ping_and_close(cache: MemoryCache) -> None:
    await cache.set("key", "value")

    assert await cache.ping() is True
    await cache.close()
    assert await cache.get("key") is None


async def test_get_many_and_count_reads_and_counts_in_one_call(
    cache: MemoryCache, clock: FakeClock
) -> None:
    await cache.set("a", "1")

    assert await cache.get_many_and_count(["a", "b"], "hits", 60) == (["1", None], 1)
    clock.advance(59)
    assert await cache.get_many_and_count(["a"], "hits", 60) == (["1"], 2)
    clock.advance(1)  # the counter expires 60 s after its first hit, not after its last
    assert await cache.get_many_and_count(["a"], "hits", 60) == (["1"], 1)
