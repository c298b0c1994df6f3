"""Liveness and readiness probes (public, outside /api/v1)."""

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.core.resources import Resources
from app.routes.deps import AppResources

router = APIRouter(prefix="/health", tags=["health"])

CHECK_TIMEOUT_SECONDS = 2.0
logger = structlog.stdlib.get_logger(__name__)


@router.get("/live")
async def live() -> dict[str, str]:
    """The process is up and serving requests."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "A dependency is unavailable"}})
async def ready(resources: AppResources) -> JSONResponse:
    """The database and cache answer; 503 (without hanging) while either is down."""
    checks = {
        "database": await _within_timeout(_database_ok(resources)),
        "cache": await _within_timeout(resources.cache.ping()),
    }
    healthy = all(checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status_code=200 if healthy else 503,
    )


async def _database_ok(resources: Resources) -> bool:
    async with resources.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return True


async def _within_timeout(check: Coroutine[Any, Any, bool]) -> bool:
    try:
        return await asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS)
    except Exception as error:  # whatever the failure, the answer is "not ready"
        logger.warning("readiness_check_failed", error=repr(error))
        return False
