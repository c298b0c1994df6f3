"""OpenTelemetry traces, metrics and logs through FastAPI's built-in support.

Switched on by OPENTELEMETRY_ENABLED. FastAPI then records a span per request (with
the route template, method and status), request metrics, and validation failures and
unhandled exceptions as log records, and exports them over OTLP/HTTP to where the
standard OTEL_* variables say: OTEL_EXPORTER_OTLP_ENDPOINT (a collector, Jaeger, Tempo,
Honeycomb, ...), OTEL_SERVICE_NAME. The SDK and exporter are the `opentelemetry` extra
(`uv sync --extra opentelemetry`, or EXTRAS=opentelemetry for the container image).

Switched off, FastAPI's instrumentation is disabled outright: otherwise it looks up the
global OpenTelemetry providers on every request (3 % of the CPU of a `GET /users/me`,
profiled) only to find none.
"""

from collections.abc import MutableMapping
from importlib.util import find_spec
from typing import Any

from fastapi.telemetry import TelemetryConfig

from app.core.config import Settings

TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
# Probes and scrapes, every few seconds from every instance: noise, not traces.
UNTRACED_PATHS = ("/health/", "/metrics")


def untraced(scope: MutableMapping[str, Any]) -> bool:
    path: str = scope.get("path", "")
    return path.startswith(UNTRACED_PATHS)


def telemetry_config(settings: Settings) -> TelemetryConfig:
    if not settings.opentelemetry_enabled:
        return TELEMETRY_OFF
    if find_spec("opentelemetry.sdk") is None:
        # FastAPI would only log a warning and export nothing: say so at start-up instead.
        raise RuntimeError(
            "OPENTELEMETRY_ENABLED needs the OpenTelemetry SDK: install the `opentelemetry` "
            "extra (uv sync --extra opentelemetry, or EXTRAS=opentelemetry for the image)"
        )
    return {"auto_configure": True, "exclude": untraced}
