"""Read replica settings: PostgreSQL standbys of a PostgreSQL primary, each listed once."""

from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import Settings

PRIMARY = "postgresql+asyncpg://app:pw@primary.internal:5432/app"
REPLICA = "postgresql+asyncpg://app:pw@replica-1.internal:5432/app"


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **({"database_url": PRIMARY} | values))


def test_no_replicas_by_default() -> None:
    assert Settings(_env_file=None).database_replica_urls == []


def test_replicas_of_a_postgres_primary_are_accepted() -> None:
    second = REPLICA.replace("replica-1", "replica-2")

    settings = _settings(database_replica_urls=[REPLICA, second])

    assert settings.database_replica_urls == [REPLICA, second]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"database_replica_urls": ["replica-1:5432"]}, "not a URL"),
        ({"database_replica_urls": ["mysql://app@replica-1/app"]}, "not a PostgreSQL URL"),
        ({"database_replica_urls": ["postgresql://app@replica-1/app"]}, "not a PostgreSQL URL"),
        ({"database_replica_urls": [REPLICA, REPLICA]}, "lists a replica twice"),
        ({"database_replica_urls": [PRIMARY]}, "a replica is a standby"),
        (
            {"database_url": "sqlite+aiosqlite:///./app.db", "database_replica_urls": [REPLICA]},
            "needs DATABASE_URL on PostgreSQL",
        ),
    ],
)
def test_replicas_that_cannot_be_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _settings(**values)


@pytest.mark.parametrize(
    ("replicas", "message"),
    [
        # One server spelled twice: default port, host case, another password, options.
        (
            [REPLICA, "postgresql+asyncpg://app:pw@replica-1.internal/app"],
            "entries 1 and 2 are both app@replica-1.internal:5432/app",
        ),
        (
            [REPLICA, "postgresql+asyncpg://app:pw@Replica-1.INTERNAL:5432/app"],
            "lists a replica twice",
        ),
        (
            [REPLICA, "postgresql+asyncpg://app:other@replica-1.internal:5432/app?ssl=require"],
            "lists a replica twice",
        ),
        (["postgresql+asyncpg://app:pw@primary.internal/app"], "entry 1 is DATABASE_URL"),
        (["postgresql+asyncpg://app:other@PRIMARY.internal:5432/app"], "entry 1 is DATABASE_URL"),
    ],
)
def test_two_spellings_of_one_server_are_one_replica(replicas: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        _settings(database_replica_urls=replicas)

    assert "pw" not in str(refused.value.errors()[0]["msg"])


def test_another_user_or_database_on_one_server_is_another_replica() -> None:
    """Not refused: what they read differs (the database), or who reads it (the user)."""
    other_user = REPLICA.replace("app:pw", "reporting:pw")
    localhost = "postgresql+asyncpg://app:pw@localhost/app"
    loopback = "postgresql+asyncpg://app:pw@127.0.0.1/app"  # one host, two names: no DNS

    settings = _settings(database_replica_urls=[REPLICA, other_user, localhost, loopback])

    assert len(settings.database_replica_urls) == 4


@pytest.mark.parametrize(
    ("replica", "message"),
    [
        ("postgresql+asyncpg:///app", "entry 2 names no host"),
        ("postgresql+asyncpg://app:secret@replica-2.internal:5432", "entry 2 names no database"),
        (
            "postgresql+asyncpg://app:secret@/app?host=replica-2&host=replica-3",
            "entry 2 names several hosts",
        ),
        ("postgresql+asyncpg://app:secret@replica-2,replica-3/app", "entry 2 names several hosts"),
    ],
)
def test_a_replica_url_that_leaves_the_server_to_defaults_is_refused(
    replica: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        _settings(database_replica_urls=[REPLICA, replica])

    assert "secret" not in str(refused.value.errors()[0]["msg"])


@pytest.mark.parametrize(
    "values",
    [
        {"database_replica_check_interval_seconds": 0.1},  # a round of queries each time
        {"database_replica_pool_timeout": 30},  # past the whole timeout budget
        {"database_replica_statement_timeout_seconds": 0},
    ],
)
def test_replica_timings_out_of_bounds_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _settings(database_replica_urls=[REPLICA], **values)


def test_a_refused_replica_url_is_shown_without_its_password() -> None:
    with pytest.raises(ValidationError) as refused:
        _settings(database_replica_urls=["postgres://app:hunter2@replica-1/app"])

    message = refused.value.errors()[0]["msg"]
    assert "replica-1" in message
    assert "hunter2" not in message
