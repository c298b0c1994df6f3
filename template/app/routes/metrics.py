"""Prometheus scrape endpoint, mounted only when METRICS_ENABLED is on.

Public like the health checks: keep it off the internet at the edge (the proxy
configurations in deploy/ do not route it), and let Prometheus scrape the instances directly.
"""

from fastapi import APIRouter, Response

from app.core.metrics import render_metrics

router = APIRouter(tags=["metrics"])


@router.api_route("/metrics", methods=["GET", "HEAD"], include_in_schema=False)
async def metrics() -> Response:
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
