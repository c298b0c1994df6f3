"""Prometheus metrics for HTTP traffic, switched on by METRICS_ENABLED.

Requests are labelled by route template (`/api/v1/articles/{article_id}`), never by the
raw path, so the number of series stays bounded whatever clients request.

Several worker processes (WEB_CONCURRENCY > 1) each count on their own; point
PROMETHEUS_MULTIPROC_DIR at an empty directory that exists before the workers start
(a tmpfs or emptyDir, fresh on every container start) and /metrics adds up every
worker's values. One worker per container (the Kubernetes manifests) needs nothing.
"""

import os
import re
import time
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The status of a request whose client left before the answer (nginx's convention).
CLIENT_CLOSED_REQUEST = 499

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "<unmatched>"
# Anything else a client sends as a method is counted as OTHER, so it cannot add series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter("http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from receiving a request to finishing its response.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_FLIGHT = Gauge(
    "http_requests_in_progress",
    "HTTP requests being handled.",
    ["method"],
    multiprocess_mode="livesum",  # across workers: the sum over the live ones
)


# The email outbox (app/services/outbox_service.py). Outcomes are counted by the process
# that made the attempt (a worker's own endpoint, WORKER_METRICS_PORT, or /metrics when
# jobs run in process); the gauges are read from the database when /metrics is scraped.
OUTBOX_OUTCOMES = Counter(
    "outbox_deliveries_total",
    "Delivery attempts at outbox messages, by outcome: sent, failed (to be retried or"
    " dead), dead (the retry budget spent, or refused for good), skipped (a job whose"
    " attempt was made already), expired (its link stopped working before it was sent).",
    ["outcome"],
)
OUTBOX_UNCERTAIN_REDELIVERIES = Counter(
    "outbox_uncertain_redeliveries_total",
    "Attempts after an attempt that never reported (its worker died): possible duplicates.",
)
OUTBOX_PENDING = Gauge(
    "outbox_pending_messages",
    "Outbox messages waiting to be sent (queue depth).",
    multiprocess_mode="mostrecent",
)
OUTBOX_DEAD = Gauge(
    "outbox_dead_messages",
    "Outbox messages dead-lettered, waiting for an operator.",
    multiprocess_mode="mostrecent",
)
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "outbox_oldest_pending_age_seconds",
    "Age of the oldest outbox message waiting to be sent; 0 with none.",
    multiprocess_mode="mostrecent",
)

# Set by the web app's /metrics from the database, reported by no other process.
DATABASE_GAUGES = (OUTBOX_PENDING, OUTBOX_DEAD, OUTBOX_OLDEST_PENDING_AGE)


class MetricsMiddleware:
    """Counts every HTTP request once, after routing has resolved its template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
        status_code = 500  # unless a response starts: an exception escaped the app

        async def send_recording_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        in_flight = IN_FLIGHT.labels(method)
        in_flight.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_recording_status)
        except ClientDisconnect:
            status_code = CLIENT_CLOSED_REQUEST  # the client left; not a server error
            raise
        finally:
            in_flight.dec()
            route = route_template(scope)
            LATENCY.labels(method, route).observe(time.perf_counter() - started)
            REQUESTS.labels(method, route, str(status_code)).inc()


def route_template(scope: Scope) -> str:
    """The matched route's path template, e.g. `/api/v1/articles/{article_id}`."""
    # The router records the matched route in the scope it shares with the middleware.
    route = scope.get("route")
    path_format = getattr(route, "path_format", None)
    if not isinstance(path_format, str):
        return UNMATCHED_ROUTE
    # A route of an included router may know only its own part of the path: the rest
    # is the literal prefix the request was routed through.
    matched = _fill_in(route, path_format, scope.get("path_params", {}))
    path: str = scope["path"]
    if matched and path.endswith(matched):
        return path.removesuffix(matched) + path_format
    return path_format


# A parameter the route does not declare, or a value its convertor refuses.
_UNFILLABLE = (KeyError, ValueError, AssertionError)


def _fill_in(route: object, path_format: str, path_params: dict[str, Any]) -> str | None:
    convertors = getattr(route, "param_convertors", {})
    try:
        return path_format.format(
            **{name: convertors[name].to_string(value) for name, value in path_params.items()}
        )
    except _UNFILLABLE:
        return None


def render_metrics() -> tuple[bytes, str]:
    """The exposition text and its content type, over every worker when multiprocess."""
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if not directory:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    forget_dead_workers(Path(directory))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*_(\d+)\.db$")


def forget_dead_workers(directory: Path) -> None:
    """Drop live-gauge files of workers that exited: the supervisor replaced them, and their
    last in-flight count must not be added forever. Counters and histograms keep their
    files, since what a dead worker counted still happened."""
    for file in directory.glob("gauge_live*_*.db"):
        match = _LIVE_GAUGE_FILE.match(file.name)
        if match and not _process_exists(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), str(directory))  # type: ignore[no-untyped-call]


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
