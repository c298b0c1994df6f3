"""Sentry is optional: imported only when SENTRY_DSN is set, and then an unhandled error
in a request reaches the DSN's ingest (here a local HTTP server standing in for Sentry).

Each case runs in a fresh interpreter, since initialising the SDK patches the web
framework for the whole process.
"""

import gzip
import json
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import PROJECT_ROOT
from tests.helpers import free_port

CREATE_APP = """
import sys
from app.core.config import Settings
from app.main import create_app
create_app(Settings(_env_file=None, sentry_dsn={dsn!r}))
{check}
"""


def _run(dsn: str | None, check: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  (our own interpreter, fixed code)
        [sys.executable, "-c", CREATE_APP.format(dsn=dsn, check=check)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_a_dsn_the_sdk_is_not_even_imported() -> None:
    result = _run(None, "assert 'sentry_sdk' not in sys.modules, 'sentry_sdk was imported'")

    assert result.returncode == 0, result.stderr


class Ingest:
    """What a Sentry DSN's endpoint received: the items of every envelope posted to it."""

    def __init__(self) -> None:
        self.items: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (item header, payload)
        self.paths: list[str] = []

    def receive(self, path: str, encoding: str | None, body: bytes) -> None:
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        lines = body.split(b"\n")
        self.paths.append(path)
        # Envelope: a header line, then (item header, payload) line pairs.
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            if header.strip():
                self.items.append((json.loads(header), json.loads(payload or b"{}")))

    def events(self) -> list[dict[str, Any]]:
        return [payload for header, payload in self.items if header.get("type") == "event"]


@pytest.fixture
def ingest() -> Iterator[tuple[Ingest, int]]:
    received = Ingest()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.receive(self.path, self.headers.get("Content-Encoding"), body)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_dsn_sends_an_unhandled_error_to_its_ingest(ingest: tuple[Ingest, int]) -> None:
    """An unhandled error inside a request, through the real middleware (which logs it
    with its traceback): Sentry's logging integration posts it to the DSN's project."""
    received, port = ingest
    script = """
import asyncio
import httpx
import sentry_sdk
from app.core.config import Settings
from app.main import create_app

app = create_app(Settings(_env_file=None, sentry_dsn="http://public@127.0.0.1:PORT/42"))
client = sentry_sdk.get_client()
assert client.options["send_default_pii"] is False

@app.get("/boom")
async def boom() -> None:
    raise RuntimeError("boom for the error tracker")

async def main() -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/boom", headers={"X-Request-ID": "sentry-test-1"})
    assert response.status_code == 500, response.text

asyncio.run(main())
sentry_sdk.flush(timeout=10)
""".replace("PORT", str(port))
    result = subprocess.run(  # noqa: S603  (our own interpreter, fixed code)
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert received.paths
    assert all(path == "/api/42/envelope/" for path in received.paths)
    [event] = received.events()
    assert event["environment"] == "development"
    exceptions = event["exception"]["values"]
    assert any(
        e["type"] == "RuntimeError" and e["value"] == "boom for the error tracker"
        for e in exceptions
    ), exceptions
