"""The cache the app actually uses: Redis with TEST_REDIS_URL, the in-process one otherwise."""

from app.core.cache import MemoryCache, RedisCache, hash_tag
from app.core.resources import Resources


async def test_the_configured_cache_backend_is_used(resources: Resources) -> None:
    expected = RedisCache if resources.settings.redis_url else MemoryCache

    assert isinstance(resources.cache, expected)
    assert await resources.cache.ping()


async def test_set_get_and_overwrite(resources: Resources) -> None:
    cache = resources.cache
    await cache.set("greeting", "hello")
    await cache.set("greeting", "héllo wörld")

    assert await cache.get("greeting") == "héllo wörld"
    assert await cache.get("missing") is None


async def test_pop_is_single_use(resources: Resources) -> None:
    cache = resources.cache
    await cache.set("one-time", "token", ttl_seconds=60)

    assert await cache.pop("one-time") == "token"
    assert await cache.pop("one-time") is None
    assert await cache.get("one-time") is None


async def test_delete_returns_how_many_keys_existed(resources: Resources) -> None:
    cache = resources.cache
    await cache.set("a", "1")
    await cache.set("b", "2", ttl_seconds=60)

    assert await cache.delete("a", "b", "missing") == 2
    assert await cache.delete() == 0
    assert await cache.get("a") is None


async def test_keys_are_isolated_under_the_run_prefix(resources: Resources) -> None:
    cache = resources.cache
    await cache.set("scoped", "value", ttl_seconds=60)

    if isinstance(cache, RedisCache):
        prefix = resources.settings.cache_key_prefix
        assert cache.prefix == prefix
        assert await cache.client.get(prefix + "scoped") == "value"
        assert 0 < await cache.client.ttl(prefix + "scoped") <= 60
        assert await cache.client.exists("scoped") == 0
    else:
        assert await cache.get("scoped") == "value"


async def test_get_many_and_count_reads_and_counts_in_one_round_trip(
    resources: Resources,
) -> None:
    cache = resources.cache
    await cache.set("present", "value")

    first = await cache.get_many_and_count(["present", "absent"], "counter", 60)
    second = await cache.get_many_and_count(["absent"], "counter", 60)

    assert first == (["value", None], 1)
    assert second == ([None], 2)
    if isinstance(cache, RedisCache):  # the expiry is set by the first count only
        assert 0 < await cache.client.ttl(cache.prefix + "counter") <= 60


async def test_keys_of_many_hash_slots_read_together_come_back_in_order(
    resources: Resources,
) -> None:
    """On a Redis Cluster these keys are in as many hash slots, on every node: each read
    is split into one command per slot, and every value comes back in its key's place."""
    cache = resources.cache
    keys = [f"spread-{n}" for n in range(12)]
    for n in range(0, 12, 2):
        await cache.set(keys[n], f"value {n}")
    expected = [f"value {n}" if n % 2 == 0 else None for n in range(12)]
    tag = hash_tag("caller")

    values = await cache.get_many(*keys)
    counted = await cache.get_many_and_count([*keys, f"previous:{tag}"], f"current:{tag}", 60)
    apart = await cache.get_many_and_count(keys, "counter elsewhere", 60)

    assert values == expected
    assert counted == ([*expected, None], 1)
    assert apart == (expected, 1)
