"""OPENTELEMETRY_ENABLED: request spans reach an OTLP/HTTP collector (a real HTTP server).

The app runs under uvicorn in a fresh interpreter: FastAPI configures the exporters from
the environment when the server starts the lifespan, and OpenTelemetry's global
providers can be set only once per process.
"""

import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from app.core.config import Settings
from tests.conftest import PROJECT_ROOT
from tests.helpers import API, free_port

SERVE_AND_REQUEST = """
import asyncio
import pickle
import sys

import httpx
import uvicorn

from app.main import create_app

settings_file, port, *paths = sys.argv[1:]
settings = pickle.loads(open(settings_file, "rb").read())
config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=int(port), log_level="warning")
server = uvicorn.Server(config)


async def main() -> None:
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for path in paths:
            print("requested", path, (await client.get(path)).status_code)
    server.should_exit = True
    await serving  # the lifespan's shutdown flushes what is still to export


asyncio.run(main())
"""
REQUESTED = [f"{API}/users/me", "/health/live"]


class Collector(ThreadingHTTPServer):
    """Records the OTLP/HTTP export requests it receives."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", free_port()), _CollectorHandler)
        self.exports: list[tuple[str, str, bytes]] = []  # (path, content type, body)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spans(self) -> list[ExportTraceServiceRequest]:
        requests = []
        for path, content_type, body in self.exports:
            if path == "/v1/traces":
                assert content_type == "application/x-protobuf"
                requests.append(ExportTraceServiceRequest.FromString(body))
        return requests


class _CollectorHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.exports.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:  # keep the test output clean
        pass


@contextmanager
def running_collector() -> Iterator[Collector]:
    collector = Collector()
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    try:
        yield collector
    finally:
        collector.shutdown()
        collector.server_close()


def serve_and_request(settings: Settings, collector: Collector, tmp_path: Path) -> list[str]:
    """Serve the app, request `REQUESTED`, stop it; the "<path> <status>" of each request."""
    settings_file = tmp_path / "settings.pickle"
    settings_file.write_bytes(pickle.dumps(settings))
    environment = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_SERVICE_NAME": "traced-service",
        # Traces are what this test reads; metrics and logs would only add exports.
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    result = subprocess.run(  # noqa: S603  (our own interpreter, fixed code)
        [sys.executable, "-c", SERVE_AND_REQUEST, str(settings_file), str(free_port()), *REQUESTED],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [
        line.removeprefix("requested ")
        for line in result.stdout.splitlines()
        if line.startswith("requested ")  # the app's own log lines go to stdout too
    ]


def test_request_spans_are_exported_to_the_collector(settings: Settings, tmp_path: Path) -> None:
    traced = settings.model_copy(update={"opentelemetry_enabled": True})
    with running_collector() as collector:
        output = serve_and_request(traced, collector, tmp_path)

    assert output == [f"{API}/users/me 401", "/health/live 200"]
    exported = collector.spans()
    resources = [spans.resource for request in exported for spans in request.resource_spans]
    spans = [
        span
        for request in exported
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    attributes = [{item.key: item.value for item in span.attributes} for span in spans]
    routes = {found["http.route"].string_value for found in attributes if "http.route" in found}
    statuses = {
        found["http.response.status_code"].int_value
        for found in attributes
        if found.get("http.route") and found["http.route"].string_value == f"{API}/users/me"
    }
    service_names = {
        item.value.string_value
        for resource in resources
        for item in resource.attributes
        if item.key == "service.name"
    }

    assert f"{API}/users/me" in routes
    assert 401 in statuses
    assert "/health/live" not in routes  # probes are not traced
    assert service_names == {"traced-service"}


def test_nothing_is_exported_when_it_is_off(settings: Settings, tmp_path: Path) -> None:
    untraced = settings.model_copy(update={"opentelemetry_enabled": False})
    with running_collector() as collector:
        output = serve_and_request(untraced, collector, tmp_path)

    assert output == [f"{API}/users/me 401", "/health/live 200"]
    assert collector.exports == []
