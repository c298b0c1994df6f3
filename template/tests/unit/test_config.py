from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import DEFAULT_SECRET_KEY, Settings

STRONG_SECRET = "k" * 16 + "3x9Q-random-enough-for-tests"  # 44 characters
POSTGRES_URL = "postgresql+asyncpg://app:pw@db.internal:5432/app"


def production_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "production",
        "secret_key": STRONG_SECRET,
        "database_url": POSTGRES_URL,
        "redis_url": "redis://cache.internal:6379/0",
        "debug": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def test_correct_production_config_is_accepted() -> None:
    settings = production_settings()

    assert settings.environment == "production"
    assert not settings.uses_sqlite


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"secret_key": DEFAULT_SECRET_KEY}, "SECRET_KEY"),
        ({"secret_key": "too-short-secret"}, "SECRET_KEY"),
        ({"database_url": "sqlite+aiosqlite:///./app.db"}, "DATABASE_URL"),
        ({"redis_url": None}, "REDIS_URL"),
        ({"redis_url": ""}, "REDIS_URL"),
        ({"debug": True}, "DEBUG"),
    ],
)
def test_insecure_production_config_is_refused(overrides: dict[str, Any], setting: str) -> None:
    with pytest.raises(ValidationError, match=setting):
        production_settings(**overrides)


def test_every_production_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as raised:
        production_settings(
            secret_key=DEFAULT_SECRET_KEY,
            database_url="sqlite+aiosqlite://",
            redis_url=None,
        )

    message = str(raised.value)
    for setting in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
        assert setting in message


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_defaults_are_allowed_outside_production(environment: str) -> None:
    settings = Settings(
        _env_file=None,
        environment=environment,
        secret_key=DEFAULT_SECRET_KEY,
        database_url="sqlite+aiosqlite:///./dev.db",
        redis_url=None,
    )

    assert settings.uses_sqlite


@pytest.mark.parametrize("value", ["10.0.0.1", "10.0.0.0/8", "fd00::/8", "::1"])
def test_trusted_proxies_accept_addresses_and_networks(value: str) -> None:
    settings = Settings(_env_file=None, trusted_proxies=[value])

    assert settings.trusted_proxies == [value]


@pytest.mark.parametrize("value", ["proxy.internal", "10.0.0.1/8", "*"])
def test_trusted_proxies_refuse_what_is_not_an_address(value: str) -> None:
    with pytest.raises(ValidationError, match="not an IP address or network"):
        Settings(_env_file=None, trusted_proxies=[value])
