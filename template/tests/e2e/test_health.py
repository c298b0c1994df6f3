import time
from pathlib import Path

import httpx

from app.core.config import Settings
from app.routes.health import CHECK_TIMEOUT_SECONDS
from tests.helpers import UNREACHABLE_REDIS, app_with_cache_at


async def test_live_is_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_database_and_cache(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200
    ready = response.json()
    replicas = ready.pop("replicas", [])
    assert ready == {"status": "ok", "checks": {"database": True, "cache": True}}
    # Listed only when configured (the suite's TEST_READ_REPLICA mode), each one usable.
    assert len(replicas) == len(settings.database_replica_urls)
    assert all(replica["state"] == "ok" for replica in replicas)


async def test_ready_is_503_without_hanging_when_the_cache_is_down(
    tmp_path: Path, settings: Settings
) -> None:
    async with app_with_cache_at(settings, UNREACHABLE_REDIS, tmp_path) as client:
        started = time.monotonic()
        response = await client.get("/health/ready")
        elapsed = time.monotonic() - started

    assert response.status_code == 503
    ready = response.json()
    ready.pop("replicas", None)  # with TEST_READ_REPLICA: reported, and no help
    assert ready == {"status": "unavailable", "checks": {"database": True, "cache": False}}
    assert elapsed < CHECK_TIMEOUT_SECONDS + 1


async def test_an_instance_starts_while_redis_is_down_and_answers_503_until_it_is_back(
    tmp_path: Path, settings: Settings
) -> None:
    """A replica restarted during a Redis outage or failover must start (and answer 503),
    not crash-loop: sending jobs to Redis (`JOBS_IN_PROCESS` off) waits for Redis too."""
    async with app_with_cache_at(
        settings.model_copy(update={"jobs_in_process": False}), UNREACHABLE_REDIS, tmp_path
    ) as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")

    assert live.status_code == 200
    assert ready.status_code == 503
