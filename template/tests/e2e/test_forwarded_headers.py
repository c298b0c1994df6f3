"""X-Forwarded-For / X-Forwarded-Proto are believed only from TRUSTED_PROXIES.

The proof is what matters to the service: the address rate limits are counted against.
"""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.core.config import Settings
from app.core.resources import Resources
from app.main import create_app
from tests.helpers import API, unique_email

PROXY = "10.0.0.5"
STRANGER = "198.51.100.20"


@asynccontextmanager
async def _client(
    settings: Settings, peer: str, trusted_proxies: list[str]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client connecting from `peer` to an instance trusting `trusted_proxies`."""
    app = create_app(
        settings.model_copy(
            update={"trusted_proxies": trusted_proxies, "login_rate_limit_per_ip": "3/minute"}
        )
    )
    _add_echo_route(app)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def _add_echo_route(app: FastAPI) -> None:
    @app.get("/echo-client")
    async def echo_client(request: Request) -> dict[str, str | None]:
        return {
            "host": request.client.host if request.client else None,
            "scheme": request.url.scheme,
        }


async def _failed_logins(client: httpx.AsyncClient, forwarded_for: list[str]) -> list[int]:
    statuses = []
    for value in forwarded_for:
        response = await client.post(
            f"{API}/auth/login",
            json={"email": unique_email(), "password": "not-the-password"},
            headers={"X-Forwarded-For": value},
        )
        statuses.append(response.status_code)
    return statuses


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
    settings: Settings, resources: Resources
) -> None:
    async with _client(settings, STRANGER, trusted_proxies=[PROXY]) as client:
        echoed = await client.get(
            "/echo-client",
            headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
        )
        # A new spoofed address on every attempt does not buy a fresh rate-limit budget.
        statuses = await _failed_logins(client, [f"203.0.113.{n}" for n in range(1, 5)])

    assert echoed.json() == {"host": STRANGER, "scheme": "http"}
    assert statuses == [401, 401, 401, 429]


async def test_no_proxy_is_trusted_by_default(settings: Settings, resources: Resources) -> None:
    async with _client(settings, "127.0.0.1", trusted_proxies=[]) as client:
        echoed = await client.get("/echo-client", headers={"X-Forwarded-For": "203.0.113.9"})

    assert echoed.json()["host"] == "127.0.0.1"


@pytest.mark.parametrize("trusted", [[PROXY], ["10.0.0.0/8"]], ids=["address", "network"])
async def test_a_trusted_proxy_reports_the_rightmost_untrusted_address(
    settings: Settings, resources: Resources, trusted: list[str]
) -> None:
    async with _client(settings, PROXY, trusted_proxies=trusted) as client:
        # The client forged the first entry; the proxy appended the address it saw.
        echoed = await client.get(
            "/echo-client",
            headers={"X-Forwarded-For": "192.0.2.66, 203.0.113.9", "X-Forwarded-Proto": "https"},
        )
        same_client = await _failed_logins(
            client, [f"192.0.2.{n}, 203.0.113.9" for n in range(1, 5)]
        )
        other_client = await _failed_logins(client, ["203.0.113.10"])

    assert echoed.json() == {"host": "203.0.113.9", "scheme": "https"}
    assert same_client == [401, 401, 401, 429]
    assert other_client == [401]  # its own budget: clients behind the proxy are told apart


async def test_proxies_trusted_in_a_chain_are_skipped(
    settings: Settings, resources: Resources
) -> None:
    async with _client(settings, PROXY, trusted_proxies=["10.0.0.0/8"]) as client:
        echoed = await client.get(
            "/echo-client", headers={"X-Forwarded-For": "203.0.113.9, 10.1.2.3"}
        )

    assert echoed.json()["host"] == "203.0.113.9"


def _image_environment(name: str) -> str | None:
    """The value the Dockerfile's ENV gives `name`, if any."""
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    found = re.search(rf'\b{name}=("[^"]*"|\S*)', dockerfile)
    return None if found is None else found.group(1).strip('"')


async def test_uvicorn_started_any_way_in_the_image_trusts_no_forwarded_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `uvicorn app.main:app` or `fastapi run` (no --no-proxy-headers) wrap the app in
    # uvicorn's own ProxyHeadersMiddleware, trusting FORWARDED_ALLOW_IPS (127.0.0.1 when
    # unset). The image sets it so that nobody is trusted (issue #17, second review,
    # finding 6): a local client cannot choose its address with X-Forwarded-For.
    value = _image_environment("FORWARDED_ALLOW_IPS")
    assert value is not None, "the Dockerfile must set FORWARDED_ALLOW_IPS"
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", value)
    config = uvicorn.Config("app.main:app")  # what `uvicorn app.main:app` builds
    echo = FastAPI()

    @echo.get("/client")
    def client_address(request: Request) -> str | None:
        return request.client.host if request.client else None

    # In front of the app, as uvicorn puts it when proxy headers are on.
    echo.add_middleware(ProxyHeadersMiddleware, trusted_hosts=config.forwarded_allow_ips)
    transport = httpx.ASGITransport(app=echo, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as local:
        answer = await local.get("/client", headers={"X-Forwarded-For": "203.0.113.9"})

    assert config.proxy_headers  # uvicorn's default: its middleware is in front
    assert answer.json() == "127.0.0.1"
