"""The login and email-link limits on Redis (`create_rate_limiter`): every instance of a
service counts together, and two services sharing one Redis count apart (each under its
CACHE_KEY_PREFIX)."""

import pytest

from app.core.cache import RedisCache
from app.core.rate_limit import create_rate_limiter
from app.core.resources import Resources
from app.exceptions import TooManyRequestsException

LIMIT = "1/minute"


async def test_services_on_one_redis_count_apart_under_their_key_prefixes(
    resources: Resources,
) -> None:
    settings, cache = resources.settings, resources.cache
    if not isinstance(cache, RedisCache):
        pytest.skip("needs Redis (set TEST_REDIS_URL)")
    # Under the suite's prefix: the cache is emptied after the test, these keys too.
    one = settings.model_copy(update={"cache_key_prefix": f"{settings.cache_key_prefix}one:"})
    other = settings.model_copy(update={"cache_key_prefix": f"{settings.cache_key_prefix}other:"})

    await create_rate_limiter(one).hit(LIMIT, "login-ip", "192.0.2.1")
    await create_rate_limiter(other).hit(LIMIT, "login-ip", "192.0.2.1")  # not counted with one's

    with pytest.raises(TooManyRequestsException):  # another instance of the first service
        await create_rate_limiter(one).hit(LIMIT, "login-ip", "192.0.2.1")
    stored = [key async for key in cache.client.scan_iter(match=f"{one.cache_key_prefix}*")]
    assert stored
    assert all(key.startswith(f"{one.cache_key_prefix}ratelimit") for key in stored)
