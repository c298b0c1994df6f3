import time
from pathlib import Path

import httpx

from app.core.config import Settings
from app.main import create_app
from app.routes.health import CHECK_TIMEOUT_SECONDS


async def test_live_is_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_database_and_cache(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": True, "cache": True},
    }


async def test_ready_is_503_without_hanging_when_the_cache_is_down(
    tmp_path: Path, settings: Settings
) -> None:
    # The session's settings keep the variant's test storage and email servers.
    broken_cache = settings.model_copy(
        update={
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'ready.db'}",
            "redis_url": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        }
    )
    app = create_app(broken_cache)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            started = time.monotonic()
            response = await client.get("/health/ready")
            elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": True, "cache": False},
    }
    assert elapsed < CHECK_TIMEOUT_SECONDS + 1
