"""Metrics with several uvicorn workers (as the container runs them): with
PROMETHEUS_MULTIPROC_DIR set, /metrics adds up every worker's counts, whichever worker
answers the scrape. Needs no database: only /health/live is requested.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.deploy_support import uvicorn_instance, wait_until
from tests.rendering import render

REQUESTS = 40
MAX_REQUESTS = 400


def _live_requests_counted(metrics: str) -> float:
    pattern = r'^http_requests_total\{method="GET",route="/health/live",status="200"\} (\S+)$'
    match = re.search(pattern, metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _counting_workers(metrics_dir: Path) -> set[str]:
    """Process ids that have written counters (one file each in multiprocess mode)."""
    return {
        match.group(1)
        for path in metrics_dir.glob("counter_*.db")
        if (match := re.fullmatch(r"counter_(\d+)\.db", path.name))
    }


def test_metrics_add_up_over_workers(template_repo: Path, tmp_path: Path) -> None:
    project = render(template_repo, tmp_path / "svc")
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {
        "METRICS_ENABLED": "true",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        "WEB_CONCURRENCY": "2",  # read by uvicorn itself, as in the image
    }
    with uvicorn_instance(project, "metrics", env, tmp_path) as server:
        wait_until(f"{server.url}/health/live", timeout=60, process=server)
        sent = 0
        # A new connection each time, so the kernel hands them to either worker; keep
        # going (bounded) until both have answered some.
        while sent < MAX_REQUESTS and (sent < REQUESTS or len(_counting_workers(metrics_dir)) < 2):
            response = httpx.get(f"{server.url}/health/live", headers={"Connection": "close"})
            assert response.is_success
            sent += 1
        scrapes = [
            httpx.get(f"{server.url}/metrics", headers={"Connection": "close"}) for _ in range(4)
        ]

    workers = _counting_workers(metrics_dir)
    assert len(workers) == 2, f"expected two workers to count, found {sorted(workers)}"
    counts = [_live_requests_counted(scrape.text) for scrape in scrapes]
    # The readiness poll may have added a few before the counted requests.
    assert all(count >= sent for count in counts), (sent, counts)
    assert len(set(counts)) == 1, f"scrapes disagree, so some workers were left out: {counts}"
