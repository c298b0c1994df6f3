"""A short, bounded load on a running service: a few threads, each with its own HTTP
client, sending a mix of requests until a request count or a deadline is reached,
whichever comes first. Every answer is recorded with when it came, so a test can count
failures by status and measure how long a window of them lasted.

Also what such a service runs on: a database of its own, and its settings."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

API = "/api/v1"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Outcome:
    at: float  # seconds since the load started, when the answer came
    request: str  # "GET /users/me", ...
    status: int | str  # the HTTP status, or the transport error's name
    retry_after: str | None = None


@dataclass
class LoadResult:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def by_status(self) -> Counter[int | str]:
        return Counter(outcome.status for outcome in self.outcomes)

    def failures(self, expected: Callable[[Outcome], bool]) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if not expected(outcome)]

    def window(self, status: int | str) -> float:
        """Seconds from the first answer with `status` to the last (0 when none)."""
        moments = [outcome.at for outcome in self.outcomes if outcome.status == status]
        return max(moments) - min(moments) if moments else 0.0

    def summary(self) -> str:
        counts = ", ".join(
            f"{status}: {n}" for status, n in sorted(self.by_status().items(), key=str)
        )
        rate = len(self.outcomes) / self.seconds if self.seconds else 0.0
        return f"{len(self.outcomes)} requests in {self.seconds:.1f} s ({rate:.0f}/s); {counts}"


def register_and_login(client: httpx.Client, base: str, label: str = "load") -> dict[str, str]:
    """Bearer headers of a new account."""
    credentials = {"email": f"{label}-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}
    registered = client.post(f"{base}{API}/auth/register", json=credentials)
    assert registered.status_code == 202, registered.text
    login = client.post(f"{base}{API}/auth/login", json=credentials)
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


# One step of the mix: given a client and the request number, send one request and
# return its label and response.
Step = Callable[[httpx.Client, int], tuple[str, httpx.Response]]


def reads_and_writes(base: str, headers: dict[str, str]) -> Step:
    """The mix of a logged-in client: its profile, the article list, a new article,
    and that article read back, in turn."""

    def step(client: httpx.Client, number: int) -> tuple[str, httpx.Response]:
        match number % 4:
            case 0:
                return "GET /users/me", client.get(f"{base}{API}/users/me", headers=headers)
            case 1:
                return "GET /articles", client.get(f"{base}{API}/articles", headers=headers)
            case 2:
                body = {"title": f"load {number}", "content": "x"}
                response = client.post(f"{base}{API}/articles", headers=headers, json=body)
                return "POST /articles", response
            case _:
                return "GET /articles?limit=1", client.get(
                    f"{base}{API}/articles", headers=headers, params={"limit": 1}
                )

    return step


def run_load(
    step: Step,
    *,
    workers: int,
    max_requests: int,
    max_seconds: float,
    pause_seconds: float = 0.0,
    timeout_seconds: float = 10.0,
    during: Callable[[float], None] | None = None,
) -> LoadResult:
    """Run `step` from `workers` threads until `max_requests` were sent or `max_seconds`
    passed. `during`, when given, is called from one more thread every 0.1 s with the
    seconds elapsed (to cause a failure mid-load), until the load ends."""
    result = LoadResult()
    lock = threading.Lock()
    counter = iter(range(max_requests))
    started = time.monotonic()
    deadline = started + max_seconds
    finished = threading.Event()

    def worker() -> None:
        with httpx.Client(timeout=timeout_seconds) as client:
            while time.monotonic() < deadline:
                with lock:
                    number = next(counter, None)
                if number is None:
                    return
                try:
                    label, response = step(client, number)
                    status: int | str = response.status_code
                    retry_after = response.headers.get("Retry-After")
                except httpx.HTTPError as error:
                    label, status, retry_after = "?", type(error).__name__, None
                outcome = Outcome(time.monotonic() - started, label, status, retry_after)
                with lock:
                    result.outcomes.append(outcome)
                if pause_seconds:
                    time.sleep(pause_seconds)

    def driver() -> None:
        assert during is not None
        while not finished.wait(0.1):
            during(time.monotonic() - started)

    with ThreadPoolExecutor(max_workers=workers + 1) as pool:
        watcher = pool.submit(driver) if during is not None else None
        for future in [pool.submit(worker) for _ in range(workers)]:
            future.result()
        finished.set()
        if watcher is not None:
            watcher.result()
    result.seconds = time.monotonic() - started
    result.outcomes.sort(key=lambda outcome: outcome.at)
    return result


def _admin(server_url: str, statement: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)

    async def run() -> None:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
        await engine.dispose()

    asyncio.run(run())


@contextmanager
def fresh_database(server_url: str, label: str) -> Iterator[str]:
    """A new database on the PostgreSQL of `server_url` (a direct connection), named after
    `label`; its URL. Dropped, with any connection still open to it, at the end."""
    name = f"{label}_{uuid.uuid4().hex[:12]}"
    _admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def service_env(database_url: str, redis_url: str, **overrides: str) -> dict[str, str]:
    """Settings of an instance under load: fast hashing, rate limits out of reach (their
    counting still paid), keys under a prefix of its own; `overrides` win."""
    return {
        "ENVIRONMENT": "test",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CACHE_KEY_PREFIX": f"load:{uuid.uuid4().hex}:",
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_PER_USER": "100000/minute",
        "RATE_LIMIT_PER_IP": "100000/minute",
        "LOGIN_RATE_LIMIT_PER_IP": "100000/minute",
        "LOG_JSON": "true",
    } | overrides
