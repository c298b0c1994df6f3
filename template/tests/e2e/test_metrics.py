"""Prometheus metrics: off by default, one setting turns them on, routes by template."""

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from app.core.config import Settings
from app.core.resources import Resources
from app.main import create_app
from tests.helpers import API


@pytest.fixture
async def metrics_client(
    settings: Settings, resources: Resources
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"metrics_enabled": True}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def _sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample, found by name and exact labels (0 if absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in metrics.splitlines():
        match = re.fullmatch(re.escape(name) + r"\{(.*)\} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


async def test_metrics_are_off_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")

    assert response.status_code == 404


async def test_requests_are_counted_by_route_template(
    metrics_client: httpx.AsyncClient,
) -> None:
    before = (await metrics_client.get("/metrics")).text
    missing_ids = ["00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"]
    for article_id in missing_ids:
        response = await metrics_client.get(f"{API}/articles/{article_id}")
        assert response.status_code == 401  # routing matched; the caller is anonymous
    await metrics_client.get("/no/such/path")
    response = await metrics_client.get("/metrics")  # no credentials needed
    after = response.text

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    template = API + "/articles/{article_id}"
    labels = {"method": "GET", "route": template, "status": "401"}
    counted = _sample(after, "http_requests_total", **labels)
    assert counted - _sample(before, "http_requests_total", **labels) == 2
    assert all(article_id not in after for article_id in missing_ids)
    assert "/no/such/path" not in after
    assert _sample(after, "http_requests_total", method="GET", route="<unmatched>", status="404")
    assert _sample(after, "http_request_duration_seconds_count", method="GET", route=template) >= 2
    # The scrape itself is in flight while the exposition is rendered.
    assert _sample(after, "http_requests_in_progress", method="GET") >= 1


async def test_unusual_methods_cannot_add_series(metrics_client: httpx.AsyncClient) -> None:
    await metrics_client.request("BREW", "/health/live")
    metrics = (await metrics_client.get("/metrics")).text

    assert "BREW" not in metrics
    assert _sample(
        metrics, "http_requests_total", method="OTHER", route="/health/live", status="405"
    )
