"""Liveness and readiness probes (public, outside /api/v1).

Each answers HEAD as it answers GET (load balancers and uptime monitors probe with
HEAD): the same status and headers, without the body (RFC 9110, section 9.3.2). The
HEAD routes stay out of the OpenAPI document, which describes the GET ones.
"""

import asyncio
from collections.abc import Coroutine
from dataclasses import asdict
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


class ReplicaReadiness(BaseModel):
    """A read replica, as its last check found it."""

    name: str = Field(description="`host:port/database` of the replica.")
    state: Literal["ok", "lagging", "down", "not_standby", "mismatched"] = Field(
        description="`ok`: it takes reads. Skipped: `lagging` beyond the bound, `down` "
        "(unreachable, refusing, or a read timed out), `not_standby` (promoted, or a "
        "primary), `mismatched` (another cluster, database or schema revision than the "
        "primary's: a setting to fix)."
    )
    lag_seconds: float | None = Field(
        description="How far behind the primary it was (an upper bound); null if unmeasured."
    )


class Readiness(BaseModel):
    """Whether the service can serve requests, and the state of each dependency."""

    status: Literal["ok", "degraded", "unavailable"] = Field(
        description="`degraded`: the primary and the cache answer, but a read replica is "
        "skipped (its reads go elsewhere): still ready."
    )
    checks: dict[str, bool] = Field(
        description="Each dependency (`database`, `cache`): true when it answered in time."
    )
    replicas: list[ReplicaReadiness] = Field(
        default=[], description="Each read replica; present only when replicas are configured."
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
    """The database and cache answer; 503 (without hanging) while either is down. A read
    replica being skipped makes the service `degraded`, not unready: its reads go to
    another replica or the primary."""
    checks = {
        "database": await _within_timeout(_database_ok(resources)),
        "cache": await _within_timeout(resources.cache.ping()),
    }
    healthy = all(checks.values())
    body: dict[str, Any] = {"status": "ok" if healthy else "unavailable", "checks": checks}
    if resources.replicas.configured:
        # As the last check found them (they are checked in the background): no waiting.
        replicas = [asdict(replica) for replica in resources.replicas.report()]
        if healthy and any(replica["state"] != "ok" for replica in replicas):
            body["status"] = "degraded"
        body["replicas"] = replicas
    return JSONResponse(body, status_code=200 if healthy else 503)


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
