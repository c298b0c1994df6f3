"""Settings that could never work are refused at start-up, with a message that says why."""

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis, RedisCluster

from app.core.cache import RedisCache, create_cache
from app.core.config import Settings, SettingsError, get_settings
from app.core.rate_limit import create_rate_limiter, limits_storage_url
from app.core.redis_client import RedisClient, parse_redis_url


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:3000/",
        "https://app.example.com/path",
        "app.example.com",
        "ftp://app.example.com",
        "https://app.example.com:port",
        "https://user@app.example.com",
    ],
)
def test_cors_origins_must_be_scheme_host_and_port(origin: str) -> None:
    with pytest.raises(ValidationError, match="CORS origin"):
        Settings(_env_file=None, cors_origins=[origin])


@pytest.mark.parametrize(
    ("origin", "as_sent"),
    [
        ("http://localhost:80", "http://localhost"),  # the default port is never sent
        ("https://app.example.com:443", "https://app.example.com"),
        ("https://exämple.com", "https://xn--exmple-cua.com"),  # browsers send punycode
        ("HTTPS://App.Example.com", "https://app.example.com"),
    ],
)
def test_cors_origins_are_written_as_browsers_send_them(origin: str, as_sent: str) -> None:
    with pytest.raises(ValidationError, match=f"writes it '{as_sent}'"):
        Settings(_env_file=None, cors_origins=[origin])


@pytest.mark.parametrize("origin", ["http://*.example.com", "http://a.com:", "https://*"])
def test_cors_origins_with_wildcards_or_empty_ports_are_refused(origin: str) -> None:
    with pytest.raises(ValidationError, match="CORS origin"):
        Settings(_env_file=None, cors_origins=[origin])


def test_well_formed_cors_origins_are_accepted() -> None:
    origins = [
        "http://localhost:3000",
        "https://app.example.com",
        "http://[::1]:8080",
        "https://xn--exmple-cua.com",
    ]

    assert Settings(_env_file=None, cors_origins=origins).cors_origins == origins


@pytest.mark.parametrize(
    ("redis_url", "limits_url"),
    [
        ("redis://cache:6379/1", "async+redis://cache:6379/1"),
        ("rediss://:secret@cache:6380/0", "async+rediss://:secret@cache:6380/0"),
        (
            "unix:///var/run/redis/redis.sock?db=1",
            "async+redis+unix:///var/run/redis/redis.sock?db=1",
        ),
        # Only the scheme's separator is rewritten, not one in a query value.
        (
            "redis://cache:6379/0?client_name=svc://api",
            "async+redis://cache:6379/0?client_name=svc://api",
        ),
        (
            "redis+sentinel://:secret@sentinel-1:26379,sentinel-2:26379/primary",
            "async+redis+sentinel://:secret@sentinel-1:26379,sentinel-2:26379/primary",
        ),
        (
            "redis+cluster://node-1:6379,node-2:6379",
            "async+redis+cluster://node-1:6379,node-2:6379",
        ),
    ],
)
def test_every_redis_url_form_is_accepted_and_kept_for_the_rate_limiter(
    redis_url: str, limits_url: str
) -> None:
    settings = Settings(_env_file=None, redis_url=redis_url)

    assert settings.redis_url == redis_url
    assert limits_storage_url(redis_url) == limits_url


@pytest.mark.parametrize(
    "redis_url",
    [
        "localhost:6379",
        "http://cache:6379/0",
        # redis-py parses these, then fails or misleads at run time:
        "redis://cache:6379/abc",  # read as database 0
        "redis://cache:6379/1/2",  # read as database 12
        "redis://cache:6379/-1",
        "redis://cache:6379/0?health_check_interval=-5",
        "redis://cache:6379/0?protocol=9",
        "redis://cache:6379/0?foo=bar",
        "redis://",
        "redis://cache:0/0",
    ],
)
def test_a_redis_url_redis_py_cannot_use_is_refused(redis_url: str) -> None:
    with pytest.raises(ValidationError, match="REDIS_URL is not a Redis URL"):
        Settings(_env_file=None, redis_url=redis_url)


@pytest.mark.parametrize(
    ("redis_url", "why"),
    [
        ("localhost:6379", "scheme"),
        ("http://cache:6379/0", "scheme"),
        ("redis+sentinel://sentinel-1:26379", "service name"),
        ("redis+sentinel://sentinel-1:26379/a/b", "service name"),
        ("redis+sentinel://sentinel-1/primary", "is not host:port"),
        ("redis+cluster://node-1:6379/0", "no path"),
        ("redis+cluster://node-1:6379,node-2:port", "no valid port"),
        ("redis+cluster://node-1:6379?ssl=true", "no query string"),
        ("redis+cluster://node-1:0", "is not host:port"),
    ],
)
def test_a_redis_url_the_clients_cannot_use_is_refused(redis_url: str, why: str) -> None:
    with pytest.raises(ValidationError, match=f"REDIS_URL is not a Redis URL.*{why}"):
        Settings(_env_file=None, redis_url=redis_url)


@pytest.mark.parametrize(
    "origins",
    [
        ["https://a .com"],
        ["https://a.com "],
        ["https://a.com\u0000"],
        ["https://a.com:0"],
        ["https://a_b.com"],
        ["https://-a.com"],
        ["https://a.com", "https://a.com"],
    ],
)
def test_cors_origins_a_browser_never_sends_are_refused(origins: list[str]) -> None:
    with pytest.raises(ValidationError, match="CORS"):
        Settings(_env_file=None, cors_origins=origins)


@pytest.mark.parametrize(
    ("redis_url", "kind"),
    [
        ("redis://cache:6379/0", Redis),
        ("redis+sentinel://user:p%40ss@sentinel-1:26379,sentinel-2:26379/primary", Redis),
        ("redis+cluster://node-1:6379,node-2:6379", RedisCluster),
    ],
)
async def test_each_redis_url_form_gets_its_kind_of_client(
    redis_url: str, kind: type[RedisClient]
) -> None:
    settings = Settings(_env_file=None, redis_url=redis_url)

    cache = create_cache(settings)  # no connection is opened before the first command
    create_rate_limiter(settings)

    assert isinstance(cache, RedisCache)
    assert type(cache.client) is kind
    await cache.close()


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_login() -> None:
    target = parse_redis_url("redis+sentinel://user:p%40ss@sentinel-1:26379,[::1]:26380/primary")

    assert target.topology == "sentinel"
    assert target.nodes == (("sentinel-1", 26379), ("::1", 26380))
    assert target.service_name == "primary"
    assert (target.username, target.password) == ("user", "p@ss")


def test_the_rate_limiter_starts_on_a_unix_socket_url() -> None:
    settings = Settings(_env_file=None, redis_url="unix:///var/run/redis/redis.sock?db=1")

    create_rate_limiter(settings)  # raised at start-up when the URL was rewritten


def test_refused_settings_are_named_without_their_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard's message once carried every input, passwords among them."""
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "short")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://svc:hunter2-db-password@db/svc")
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError) as refused:
            get_settings()
    finally:
        get_settings.cache_clear()

    message = str(refused.value)
    assert "SECRET_KEY" in message
    assert "hunter2-db-password" not in message
    assert "input_value" not in message
    assert refused.value.__cause__ is None
