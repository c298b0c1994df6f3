"""The rules of `app.core.replicas` that need no server: how a replica's lag is bounded,
which failures of a replica send a read to the primary, which replicas serve the
primary's data, and what the lag metric says of a replica nothing measures."""

import math
import time
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.cache import Cache
from app.core.config import Settings
from app.core.replicas import (
    RECOVERY_CONFLICT,
    ReplicaSet,
    _Identity,
    _lag,
    _Position,
    _replica_trouble,
)

PRIMARY_IDENTITY = _Identity(7_000_000_000_000_000_001, 16_384, "app", ("0042",))


def _positions(current_age: float, previous_age: float) -> tuple[_Position, _Position]:
    now = time.monotonic()
    return (
        _Position("0/3000100", now - current_age, PRIMARY_IDENTITY),
        _Position("0/3000000", now - previous_age, PRIMARY_IDENTITY),
    )


def test_a_standby_at_the_primary_position_lags_no_more_than_the_check_took() -> None:
    current, previous = _positions(0.01, 1.0)

    lag = _lag(True, True, 600.0, current, previous)

    assert lag is not None
    assert lag < 0.5  # not the 600 s since its last replayed commit: nothing is left


def test_a_standby_past_the_previous_position_lags_no_more_than_since_then() -> None:
    current, previous = _positions(0.01, 1.0)

    lag = _lag(False, True, 600.0, current, previous)

    assert lag is not None
    assert 1.0 <= lag < 1.5


def test_a_standby_behind_both_positions_lags_by_the_age_of_its_last_replayed_commit() -> None:
    current, previous = _positions(0.01, 1.0)

    assert _lag(False, False, 42.0, current, previous) == 42.0
    assert _lag(False, False, None, current, previous) is None  # nothing bounds it
    assert _lag(False, False, -0.2, current, previous) == 0.0  # clocks a little apart


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _error(sqlstate: str, cls: Any = DBAPIError) -> DBAPIError:
    error: DBAPIError = cls("SELECT 1", None, _DriverError(sqlstate))
    return error


@pytest.mark.parametrize(
    "sqlstate",
    [
        "08006",
        "08001",
        "57P01",
        "57P02",
        "57P03",
        RECOVERY_CONFLICT,
        "42P01",  # a table the primary has (the query ran there first): another database
        "42703",  # a column: a schema behind the primary's
        "3D000",  # the database itself
        "42501",  # privileges the primary grants
        "28P01",  # a password the primary takes
    ],
)
def test_a_replica_that_cannot_answer_sends_the_read_to_the_primary(sqlstate: str) -> None:
    assert _replica_trouble(_error(sqlstate))


def test_a_connection_failure_sends_the_read_to_the_primary() -> None:
    assert _replica_trouble(_error("", OperationalError))


@pytest.mark.parametrize(
    "sqlstate",
    [
        "25006",  # a write in a read-only transaction: a bug, raised as it is
        "42601",  # a syntax error
        "22P02",  # bad input
    ],
)
def test_a_query_that_is_wrong_is_not_run_again(sqlstate: str) -> None:
    assert not _replica_trouble(_error(sqlstate))


@pytest.mark.parametrize(
    ("replica", "problem"),
    [
        (_Identity(7_000_000_000_000_000_002, 16_384, "app", ("0042",)), "another cluster"),
        (_Identity(7_000_000_000_000_000_001, 5, "postgres", None), "another database"),
        (_Identity(7_000_000_000_000_000_001, 16_384, "app", ("0041",)), "schema revision"),
    ],
)
def test_a_replica_that_does_not_serve_the_primarys_data_is_a_mismatch(
    replica: _Identity, problem: str
) -> None:
    mismatch = replica.mismatch(PRIMARY_IDENTITY)

    assert mismatch is not None
    assert problem in mismatch


def test_a_standby_of_the_primarys_database_at_its_revision_matches() -> None:
    replica = _Identity(PRIMARY_IDENTITY.system_identifier, 16_384, "app", ("0042",))

    assert replica.mismatch(PRIMARY_IDENTITY) is None


async def test_the_lag_of_a_replica_nothing_measures_is_not_a_number() -> None:
    """A replica that went down does not keep reporting the lag it had while well."""
    primary = "postgresql+asyncpg://app@primary.internal/app"
    settings = Settings(
        _env_file=None,
        database_url=primary,
        database_replica_urls=["postgresql+asyncpg://app@lag-metric.internal/app"],
    )
    engine = create_async_engine(primary)
    replicas = ReplicaSet(settings, engine, cast(Cache, None))  # no check, no cache use
    [replica] = replicas.replicas

    def lag() -> float | None:
        return REGISTRY.get_sample_value("database_replica_lag_seconds", {"replica": replica.name})

    try:
        replicas._set(replica, "ok", 0.25, None)
        measured = lag()
        replicas._set(replica, "down", None, "gone")
        unmeasured = lag()
    finally:
        await replicas.close()
        await engine.dispose()

    assert measured == 0.25
    assert unmeasured is not None
    assert math.isnan(unmeasured)
