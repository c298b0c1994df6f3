"""Prometheus scrape endpoint, mounted only when METRICS_ENABLED is on.

Public like the health checks: keep it off the internet at the edge (the proxy
configurations in deploy/ do not route it), and let Prometheus scrape the instances directly.
"""

import structlog
from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from app.core.metrics import (
    OUTBOX_DEAD,
    OUTBOX_OLDEST_PENDING_AGE,
    OUTBOX_PENDING,
    render_metrics,
)
from app.core.resources import Resources
from app.services.outbox_service import OutboxService

router = APIRouter(tags=["metrics"])

logger = structlog.stdlib.get_logger(__name__)

# The database unreachable or failing: the scrape answers with the last values.
DATABASE_UNAVAILABLE = (SQLAlchemyError, OSError)


@router.api_route("/metrics", methods=["GET", "HEAD"], include_in_schema=False)
async def metrics(request: Request) -> Response:
    resources: Resources | None = getattr(request.app.state, "resources", None)
    if resources is not None:  # None before the lifespan has run
        await _measure_outbox(resources)
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)


async def _measure_outbox(resources: Resources) -> None:
    """Queue depth, dead letters and the oldest message's age, read now; with the database
    down the last values stay (and the scrape still answers)."""
    try:
        async with resources.session_factory() as db:
            counts = await OutboxService(resources.settings).counts(db)
    except DATABASE_UNAVAILABLE:
        logger.warning("outbox_metrics_unavailable", exc_info=True)
        return
    OUTBOX_PENDING.set(counts.pending)
    OUTBOX_DEAD.set(counts.dead)
    OUTBOX_OLDEST_PENDING_AGE.set(counts.oldest_pending_age_seconds)
