"""What one request costs the backing services: SQL statements and transactions, Redis
commands, and the connections a worker opens under concurrent load.

Counted, not timed, so one worker serving requests one at a time is enough:

- SQL: the app with DATABASE_ECHO on logs every statement, with its request id, through
  SQLAlchemy's engine logger; a statement is a logged line that is not a transaction's
  BEGIN, COMMIT or ROLLBACK nor a parameter line.
- Redis: a redis-server of this pass's own (so every command is the app's), watched with
  MONITOR. Commands a client sends are counted apart from those its scripts run
  (MONITOR marks those `lua`); both take Redis time, the first are round-trip work.
- Connections: the most database sessions (pg_stat_activity) and Redis clients one
  worker held while a burst of concurrent writes came (each holds a database connection
  for its transaction): the pools' high-water marks.

The steady state is counted: each endpoint is called once before counting (a user's
snapshot, a list page is cached then), as under load.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from bench import seed
from bench.endpoints import Account, Endpoint, request_for
from bench.servers import Server, free_port

# What is counted: the endpoints of the capacity model (docs/capacity.md).
ENDPOINTS = ("users_me", "articles_list", "articles_create", "login")
# Requests counted per endpoint (logins cost a bcrypt hash each: fewer).
COUNTED = 20
COUNTED_LOGINS = 4
BURST = 32  # concurrent requests for the connection high-water marks
SQL_LOGGER = "sqlalchemy.engine.Engine"
TRANSACTION_WORDS = ("BEGIN (implicit)", "COMMIT", "ROLLBACK")


@dataclass(frozen=True, slots=True)
class Cost:
    endpoint: str
    label: str
    requests: int
    statements: float  # per request
    transactions: float
    redis_commands: float  # sent by clients
    redis_script_commands: float  # run inside scripts


@dataclass(frozen=True, slots=True)
class Connections:
    concurrent_requests: int
    database_sessions: int
    redis_clients: int


@contextmanager
def private_redis() -> Iterator[tuple[str, int]]:
    """A redis-server on a free loopback port, nothing kept on disk; (url, port)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is needed to count Redis commands (Debian: redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as directory:
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory]
        process = subprocess.Popen(
            [binary, "--port", str(port), *options], stdout=subprocess.DEVNULL
        )
        try:
            client = redis.Redis(port=port, socket_timeout=2)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            client.close()
            yield f"redis://127.0.0.1:{port}/0", port
        finally:
            process.terminate()
            process.wait(timeout=10)


class Monitor:
    """`redis-cli monitor` into a file: every command the server runs, as it runs it."""

    def __init__(self, port: int, path: Path) -> None:
        self.path = path
        self._log = path.open("wb")
        self._process = subprocess.Popen(
            ["redis-cli", "-p", str(port), "monitor"], stdout=self._log, stderr=subprocess.STDOUT
        )
        time.sleep(0.2)  # "OK", then the commands

    def lines(self) -> list[str]:
        self._log.flush()
        return self.path.read_text(errors="replace").splitlines()

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)
        self._log.close()


def _statements(log_lines: list[str], request_ids: set[str]) -> tuple[int, int]:
    """(statements, transactions) the app logged for those requests."""
    statements = transactions = 0
    for line in log_lines:
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("logger") != SQL_LOGGER or event.get("request_id") not in request_ids:
            continue
        text = str(event.get("event", ""))
        if text == "BEGIN (implicit)":
            transactions += 1
        elif text not in TRANSACTION_WORDS and not text.startswith("["):
            statements += 1
    return statements, transactions


def _redis_commands(lines: list[str]) -> tuple[int, int]:
    """(sent by clients, run by scripts), from MONITOR lines; MONITOR's own excluded."""
    sent = scripted = 0
    for line in lines:
        if '"' not in line or line.endswith('"MONITOR"') or '"INFO"' in line:
            continue
        if " lua]" in line:
            scripted += 1
        else:
            sent += 1
    return sent, scripted


def _call(
    client: httpx.Client, endpoint: Endpoint, base_url: str, account: Account, token: str
) -> str:
    request = request_for(endpoint, base_url, account, token)
    headers = {"Content-Type": "application/json"}
    if request.token:
        headers["Authorization"] = f"Bearer {request.token}"
    response = client.request(request.method, request.url, content=request.body, headers=headers)
    assert response.status_code == endpoint.expected_status, (endpoint.key, response.text[:300])
    return response.headers["X-Request-ID"]


def count(
    server: Server,
    monitor: Monitor,
    endpoints: list[Endpoint],
    account: Account,
    token: str,
) -> list[Cost]:
    costs = []
    with httpx.Client(timeout=30) as client:
        for endpoint in endpoints:
            _call(client, endpoint, server.base_url, account, token)  # steady state
            time.sleep(0.2)
            before = len(monitor.lines())
            requests = COUNTED_LOGINS if endpoint.login_body else COUNTED
            ids = {
                _call(client, endpoint, server.base_url, account, token) for _ in range(requests)
            }
            time.sleep(0.5)  # the last log lines and MONITOR lines reach their files
            statements, transactions = _statements(server.log_path.read_text().splitlines(), ids)
            sent, scripted = _redis_commands(monitor.lines()[before:])
            costs.append(
                Cost(
                    endpoint.key,
                    endpoint.label,
                    requests,
                    statements / requests,
                    transactions / requests,
                    sent / requests,
                    scripted / requests,
                )
            )
    return costs


def connections(
    server: Server, write: Endpoint, account: Account, token: str, database_url: str, port: int
) -> Connections:
    """The most sessions and clients one worker held while `BURST` writes came at once
    (each holds a database connection for its transaction), sampled every 20 ms."""
    request = request_for(write, server.base_url, account, token)
    peaks = {"database": 0, "redis": 0}
    done = threading.Event()

    def sample() -> None:
        probe = redis.Redis(port=port, socket_timeout=2)
        try:
            while not done.is_set():
                peaks["database"] = max(peaks["database"], seed.sessions(database_url))
                # Less the one asking, and the MONITOR.
                peaks["redis"] = max(peaks["redis"], len(probe.client_list()) - 2)
                time.sleep(0.02)
        finally:
            probe.close()

    async def burst() -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(timeout=60) as client:
            sent = [
                client.request(request.method, request.url, content=request.body, headers=headers)
                for _ in range(BURST)
            ]
            for response in await asyncio.gather(*sent):
                assert response.status_code == write.expected_status, response.text[:300]

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        asyncio.run(burst())
        time.sleep(0.1)
    finally:
        done.set()
        sampler.join()
    return Connections(BURST, peaks["database"], peaks["redis"])
