"""Every access-log line carries the request id, and the user id once the caller is known."""

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import API


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        # structlog hands the formatter its event dict, context already merged in.
        if isinstance(record.msg, dict):
            self.events.append(record.msg)


@pytest.fixture
def access_log() -> Iterator[list[dict[str, Any]]]:
    handler = _Records()
    logger = logging.getLogger("app.access")
    logger.addHandler(handler)
    try:
        yield handler.events
    finally:
        logger.removeHandler(handler)


async def test_access_log_names_the_authenticated_user(
    client: httpx.AsyncClient, auth_headers: dict[str, str], access_log: list[dict[str, Any]]
) -> None:
    me = await client.get(f"{API}/users/me", headers={**auth_headers, "X-Request-ID": "req-me-1"})
    anonymous = await client.get("/health/live", headers={"X-Request-ID": "req-anon-1"})

    assert me.status_code == 200
    assert anonymous.status_code == 200
    by_request = {event["request_id"]: event for event in access_log}
    assert by_request["req-me-1"]["user_id"] == me.json()["id"]
    assert by_request["req-me-1"]["path"] == f"{API}/users/me"
    assert "user_id" not in by_request["req-anon-1"]
