"""Liveness and readiness probes (public, outside /api/v1).

Each answers HEAD as it answers GET (load balancers and uptime monitors probe with
HEAD): the same status and headers, without the body (RFC 9110, section 9.3.2). The
HEAD routes stay out of the OpenAPI document, which describes the GET ones.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.core.resources import Resources
from app.routes.deps import AppResources

router = APIRouter(prefix="/health", tags=["health"])


class Liveness(BaseModel):
    """The process answers."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Whether the service can serve requests, and the state of each dependency."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, bool] = Field(
        description="Each dependency (`database`, `cache`): true when it answered in time."
    )


CHECK_TIMEOUT_SECONDS = 2.0
logger = structlog.stdlib.get_logger(__name__)


@router.get("/live", response_model=Liveness)
@router.head("/live", include_in_schema=False)
async def live() -> dict[str, str]:
    """The process is up and serving requests."""
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency is unavailable"}},
)
@router.head("/ready", include_in_schema=False)
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
