"""What is benchmarked, and the few API calls that prepare it (account, token)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import httpx

from bench.wrk import Request

API = "/api/v1"
BENCH_EMAIL = "bench@example.com"
LOGIN_EMAIL = "bench-login@example.com"
ARTICLE_BODY = json.dumps({"title": "Benchmark draft", "content": "Written under load. " * 20})

ServerKind = Literal["hello", "app"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    key: str  # stable identifier in the JSON results
    label: str  # what the table shows
    server: ServerKind
    path: str
    method: str = "GET"
    body: str | None = None
    authenticated: bool = False
    login_body: bool = False  # the body is the benchmark account's credentials
    expected_status: int = 200


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("hello", "bare FastAPI hello (floor)", "hello", "/hello"),
    Endpoint("health_live", "GET /health/live", "app", "/health/live"),
    Endpoint(
        "login", "POST /api/v1/auth/login", "app", f"{API}/auth/login", "POST", login_body=True
    ),
    Endpoint("users_me", "GET /api/v1/users/me", "app", f"{API}/users/me", authenticated=True),
    Endpoint(
        "articles_list",
        "GET /api/v1/articles?limit=100",
        "app",
        f"{API}/articles?limit=100",
        authenticated=True,
    ),
    Endpoint(
        "articles_create",
        "POST /api/v1/articles",
        "app",
        f"{API}/articles",
        "POST",
        body=ARTICLE_BODY,
        authenticated=True,
        expected_status=201,
    ),
)
ENDPOINTS_BY_KEY = {endpoint.key: endpoint for endpoint in ENDPOINTS}


@dataclass(frozen=True, slots=True)
class Account:
    email: str
    password: str

    @property
    def login_body(self) -> str:
        return json.dumps({"email": self.email, "password": self.password})


def request_for(endpoint: Endpoint, base_url: str, account: Account, token: str) -> Request:
    return Request(
        url=base_url + endpoint.path,
        method=endpoint.method,
        body=account.login_body if endpoint.login_body else endpoint.body,
        token=token if endpoint.authenticated else None,
        # Logins come from many people: production caps the per-address login limit.
        many_clients=endpoint.login_body,
    )


def _client(base_url: str) -> httpx.Client:
    # A bcrypt hash at the default 12 rounds takes a few hundred ms; leave ample room.
    return httpx.Client(base_url=base_url, timeout=30.0)


def _expect(response: httpx.Response, status: int, what: str) -> httpx.Response:
    if response.status_code != status:
        raise RuntimeError(
            f"{what}: expected HTTP {status}, got {response.status_code}: {response.text[:2000]}"
        )
    return response


def register(base_url: str, account: Account) -> None:
    """Create the benchmark account through the API, so the app's own services hash it."""
    with _client(base_url) as client:
        body = {"email": account.email, "password": account.password, "full_name": "Bench User"}
        _expect(client.post(f"{API}/auth/register", json=body), 202, "register")


def login(base_url: str, account: Account) -> str:
    """A fresh access token for the benchmark account."""
    with _client(base_url) as client:
        response = client.post(
            f"{API}/auth/login",
            content=account.login_body.encode(),
            headers={"Content-Type": "application/json"},
        )
        token: str = _expect(response, 200, "login").json()["access_token"]
        return token


def check(endpoint: Endpoint, request: Request) -> None:
    """One request before the load: a wrong status fails fast, with the response body."""
    headers = {"Content-Type": "application/json"} if request.body else {}
    if request.token:
        headers["Authorization"] = f"Bearer {request.token}"
    with httpx.Client(timeout=30.0) as client:
        response = client.request(
            request.method, request.url, content=request.body, headers=headers
        )
    _expect(response, endpoint.expected_status, f"{endpoint.method} {endpoint.path}")
