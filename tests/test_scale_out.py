"""Horizontal scale, for real: two uvicorn instances of a rendered service on one fresh
PostgreSQL database and one Redis, behind a real nginx running the shipped
`deploy/nginx/nginx.conf` (only its addresses changed). Everything on loopback.

Proves: requests are spread over both instances; a logout through one is honoured by the
other at once; login rate limits are counted across instances, against the client
address nginx reports (a forged X-Forwarded-For changes nothing); and killing an instance
under load loses no acknowledged write while nginx keeps serving through the other.

Needs TEST_DATABASE_URL and TEST_REDIS_URL (as .ci/run sets them), and nginx (installed
from Debian's packages when missing and running as root).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.conftest import suite_runs
from tests.deploy_support import (
    Instance,
    Nginx,
    find_or_install_nginx,
    free_port,
    local_nginx_config,
    uvicorn_instance,
    wait_until,
)
from tests.rendering import SuiteRun, render, run_in_service

SERVER_URL = os.environ.get("TEST_DATABASE_URL")
REDIS_URL = os.environ.get("TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(
    not (SERVER_URL and REDIS_URL),
    reason="scale-out needs real services: set TEST_DATABASE_URL and TEST_REDIS_URL",
)
API = "/api/v1"
VARIANT = "scale-out"
LOGIN_LIMIT = 5  # per client address and minute, across every instance


@dataclass
class Service:
    project: Path
    env: dict[str, str]
    cache_prefix: str


@dataclass
class Cluster:
    nginx_url: str
    instances: list[Instance]
    timings: dict[str, float] = field(default_factory=dict)


def _admin(statement: str) -> None:
    assert SERVER_URL
    engine = create_async_engine(SERVER_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)

    async def run() -> None:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
        await engine.dispose()

    asyncio.run(run())


@pytest.fixture(scope="module")
def service(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A rendered service, migrated with `alembic upgrade head` on a database of its own."""
    assert SERVER_URL
    assert REDIS_URL
    project = render(
        template_repo, tmp_path_factory.mktemp("scale") / "svc", {"token_transport": "body"}
    )
    database = f"scale_out_{uuid.uuid4().hex[:12]}"
    cache_prefix = f"scale-out:{uuid.uuid4().hex}:"
    env = {
        "ENVIRONMENT": "production",  # the production guard is satisfied, as it must be
        "SECRET_KEY": secrets.token_urlsafe(48),  # one key: tokens from one work on the other
        "DATABASE_URL": make_url(SERVER_URL).set(database=database).render_as_string(False),
        "REDIS_URL": REDIS_URL,
        "CACHE_KEY_PREFIX": cache_prefix,
        "TRUSTED_PROXIES": '["127.0.0.1"]',  # nginx connects from here
        "BCRYPT_ROUNDS": "10",  # the least production accepts
        "PUBLIC_URL": "https://localhost",  # production refuses plain-HTTP links
        "LOGIN_RATE_LIMIT_PER_IP": f"{LOGIN_LIMIT}/minute",
        "LOGIN_RATE_LIMIT_PER_ACCOUNT": "1000/minute",
        "LOG_JSON": "true",
        # Production insists on a mail server: a closed local port, so the welcome mails
        # of the users registered here fail fast in the background (and are logged).
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": "9",
        "SMTP_SECURITY": "none",
    }
    _admin(f'CREATE DATABASE "{database}"')
    try:
        run_in_service(
            project,
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            variant=VARIANT,
            step="alembic upgrade head",
            env=dict(env),
        )
        yield Service(project, env, cache_prefix)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{cache_prefix}*", count=500))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="module")
def cluster(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """nginx on a free loopback port in front of two instances, shared by this module's
    tests (booting costs seconds); the test that kills an instance comes last."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    nginx = Nginx(find_or_install_nginx(), tmp_path)
    started = time.perf_counter()
    with ExitStack() as stack:
        instances = [
            stack.enter_context(uvicorn_instance(service.project, name, service.env, tmp_path))
            for name in ("instance-a", "instance-b")
        ]
        for instance in instances:
            wait_until(f"{instance.url}/health/ready", process=instance)
        port = free_port()
        config = tmp_path / "nginx.conf"
        config.write_text(
            local_nginx_config(
                service.project,
                upstreams=[f"127.0.0.1:{instance.port}" for instance in instances],
                listen=f"127.0.0.1:{port}",
            )
        )
        stack.enter_context(nginx.running(config))
        nginx_url = f"http://127.0.0.1:{port}"
        wait_until(f"{nginx_url}/nginx-health")
        boot = time.perf_counter() - started
        running = Cluster(nginx_url, instances, {"boot (2 instances + nginx)": boot})
        yield running
    suite_runs.extend(
        SuiteRun(VARIANT, step, True, seconds) for step, seconds in running.timings.items()
    )


def _client(source: str = "127.0.0.1") -> httpx.Client:
    """A client connecting from `source`: loopback has a whole /8 to tell clients apart."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=10.0)


def _logged_in(client: httpx.Client, base: str) -> dict[str, str]:
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    credentials = {"email": email, "password": "correct horse battery staple"}
    registered = client.post(f"{base}{API}/auth/register", json=credentials)
    assert registered.status_code == 202, registered.text
    login = client.post(f"{base}{API}/auth/login", json=credentials)
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _logged_request_ids(instance: Instance) -> dict[str, dict[str, object]]:
    """request id -> the access-log line of that request, from the instance's JSON log."""
    lines = {}
    for line in instance.log_text().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "request":
                lines[str(event["request_id"])] = event
    return lines


def test_requests_are_spread_over_both_instances(cluster: Cluster) -> None:
    sent = [f"spread-{n}" for n in range(20)]
    with _client() as client:
        for request_id in sent:
            # Any API route: nginx does not route /health from outside.
            response = client.get(
                f"{cluster.nginx_url}{API}/users/me", headers={"X-Request-ID": request_id}
            )
            assert response.status_code == 401
            assert response.headers["X-Request-ID"] == request_id
        generated = client.get(f"{cluster.nginx_url}{API}/users/me").headers["X-Request-ID"]
    time.sleep(0.2)  # let the last access-log lines reach the files
    served = [set(_logged_request_ids(instance)) & set(sent) for instance in cluster.instances]

    assert served[0] | served[1] == set(sent)
    assert not served[0] & served[1], "each request is served once"
    assert min(len(ids) for ids in served) >= 5, f"uneven spread: {[len(s) for s in served]}"
    # Without a client id, nginx makes one up and the app logs and returns the same one.
    assert len(generated) == 32
    assert any(generated in _logged_request_ids(instance) for instance in cluster.instances)


def test_logout_through_one_instance_is_honoured_by_the_other(cluster: Cluster) -> None:
    first, second = (instance.url for instance in cluster.instances)
    with _client() as client:
        headers = _logged_in(client, first)
        assert client.get(f"{second}{API}/users/me", headers=headers).status_code == 200
        started = time.perf_counter()
        logout = client.post(f"{first}{API}/auth/logout", headers=headers)
        after = client.get(f"{second}{API}/users/me", headers=headers)
        cluster.timings["logout on A, refused on B"] = time.perf_counter() - started

    assert logout.status_code == 204
    assert after.status_code == 401, after.text


def _failed_login(client: httpx.Client, base: str, **headers: str) -> int:
    response = client.post(
        f"{base}{API}/auth/login",
        json={"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com", "password": "wrong-guess"},
        headers=headers,
    )
    return response.status_code


def test_login_rate_limit_is_shared_by_the_instances(cluster: Cluster) -> None:
    urls = [instance.url for instance in cluster.instances]
    with _client("127.0.0.3") as client:  # straight to the instances, alternately
        statuses = [_failed_login(client, urls[n % 2]) for n in range(LOGIN_LIMIT + 1)]

    assert statuses == [401] * LOGIN_LIMIT + [429]


def test_through_nginx_the_limit_follows_the_real_client_not_a_forged_header(
    cluster: Cluster,
) -> None:
    with _client("127.0.0.5") as client:
        statuses = [
            _failed_login(client, cluster.nginx_url, **{"X-Forwarded-For": f"203.0.113.{n}"})
            for n in range(LOGIN_LIMIT + 1)
        ]
    with _client("127.0.0.6") as other:
        elsewhere = _failed_login(other, cluster.nginx_url)
    time.sleep(0.2)
    clients = {
        event["client"]
        for instance in cluster.instances
        for event in _logged_request_ids(instance).values()
        if event["path"] == f"{API}/auth/login"
    }

    assert statuses == [401] * LOGIN_LIMIT + [429], "a forged X-Forwarded-For bought attempts"
    assert elsewhere == 401, "another client has its own budget"
    assert {"127.0.0.5", "127.0.0.6"} <= clients
    assert not any(str(address).startswith("203.0.113.") for address in clients)


@dataclass
class LoadResult:
    created: list[str] = field(default_factory=list)  # ids acknowledged with 201
    failed_writes: int = 0
    failed_reads: int = 0
    ok_after_kill: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def test_stopping_an_instance_under_load_fails_no_request(
    service: Service, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A graceful stop (SIGTERM, what `docker stop` and a rollout send) of one of two
    instances while GETs and POSTs flow through nginx fails nothing: the stopping one
    refuses new connections (nginx passes them on) and finishes what it has. With idle
    keep-alive connections pooled in nginx, it closed them under POSTs on their way in."""
    tmp_path = tmp_path_factory.mktemp("graceful")
    nginx = Nginx(find_or_install_nginx(), tmp_path)
    operations, workers, stop_after = 600, 6, 150
    outcomes: list[tuple[str, int | str]] = []
    lock = threading.Lock()
    counter = iter(range(operations))
    with ExitStack() as stack:
        instances = [
            stack.enter_context(uvicorn_instance(service.project, name, service.env, tmp_path))
            for name in ("graceful-a", "graceful-b")
        ]
        for instance in instances:
            wait_until(f"{instance.url}/health/ready", process=instance)
        port = free_port()
        config = tmp_path / "nginx.conf"
        config.write_text(
            local_nginx_config(
                service.project,
                upstreams=[f"127.0.0.1:{instance.port}" for instance in instances],
                listen=f"127.0.0.1:{port}",
            )
        )
        stack.enter_context(nginx.running(config))
        base = f"http://127.0.0.1:{port}"
        wait_until(f"{base}/nginx-health")
        with _client() as setup:
            headers = _logged_in(setup, base)

        def worker() -> None:
            with _client() as client:
                while (number := next(counter, None)) is not None:
                    if number == stop_after:
                        instances[1].process.terminate()  # SIGTERM: a graceful stop
                    try:
                        if number % 2:
                            response = client.post(
                                f"{base}{API}/articles",
                                headers=headers,
                                json={"title": f"graceful {number}", "content": "x"},
                            )
                            status: int | str = response.status_code
                            status = "ok" if status == 201 else status
                        else:
                            response = client.get(f"{base}{API}/users/me", headers=headers)
                            status = "ok" if response.status_code == 200 else response.status_code
                    except httpx.HTTPError as error:
                        status = repr(error)
                    with lock:
                        outcomes.append((f"{'POST' if number % 2 else 'GET'} {number}", status))
                    # Pauses, as real clients make: connections to the instances lie idle.
                    time.sleep(0.05)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(worker) for _ in range(workers)]:
                future.result()
        # uvicorn re-raises the signal once it has shut down gracefully.
        assert instances[1].process.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Finished server process" in instances[1].log_text()
        error_log = nginx.error_log()
    failed = [(request, status) for request, status in outcomes if status != "ok"]
    print(f"\ngraceful stop under load: {len(outcomes)} requests, {len(failed)} failed")
    assert not failed, f"{failed[:10]}\n{error_log[-3000:]}"
    assert len(outcomes) == operations


def test_killing_an_instance_under_load_loses_no_acknowledged_write(cluster: Cluster) -> None:
    base = cluster.nginx_url
    with _client() as setup:
        headers = _logged_in(setup, base)
        seed = setup.post(
            f"{base}{API}/articles", headers=headers, json={"title": "seed", "content": "x"}
        )
        assert seed.status_code == 201, seed.text
    seed_id = seed.json()["id"]
    result = LoadResult()
    killed = threading.Event()
    operations, workers, kill_after = 240, 6, 60
    counter = iter(range(operations))
    counter_lock = threading.Lock()
    deadline = time.monotonic() + 60

    def worker() -> None:
        with _client() as client:
            while time.monotonic() < deadline:
                with counter_lock:
                    number = next(counter, None)
                if number is None:
                    return
                if number == kill_after:
                    cluster.instances[1].kill()  # SIGKILL: no graceful anything
                    killed.set()
                write = number % 2 == 0
                try:
                    if write:
                        response = client.post(
                            f"{base}{API}/articles",
                            headers=headers,
                            json={"title": f"load {number}", "content": "x"},
                        )
                    else:
                        response = client.get(f"{base}{API}/articles/{seed_id}", headers=headers)
                    ok = response.status_code == (201 if write else 200)
                except httpx.HTTPError:
                    ok = False
                with result.lock:
                    if ok and write:
                        result.created.append(response.json()["id"])
                    if not ok:
                        if write:
                            result.failed_writes += 1
                        else:
                            result.failed_reads += 1
                    # Counted by the request's place in the load, not by when the kill
                    # returned: under load, kill() returned after requests drawn later
                    # had already been answered, and those went uncounted.
                    if ok and number >= kill_after:
                        result.ok_after_kill += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(worker) for _ in range(workers)]:
            future.result()
    cluster.timings[f"{operations} requests, instance B killed mid-load"] = (
        time.perf_counter() - started
    )

    assert killed.is_set(), "the load ended before the kill"
    assert cluster.instances[1].process.poll() is not None
    with _client() as client:
        missing = [
            article_id
            for article_id in result.created
            if client.get(f"{base}{API}/articles/{article_id}", headers=headers).status_code != 200
        ]
    summary = (
        f"created={len(result.created)} failed_writes={result.failed_writes} "
        f"failed_reads={result.failed_reads} ok_after_kill={result.ok_after_kill}"
    )
    print(f"\nkill under load: {summary}, read back {len(result.created)} acknowledged creates")
    assert missing == [], f"acknowledged writes lost: {missing} ({summary})"
    assert result.failed_reads == 0, f"a read failed: nginx should retry it elsewhere ({summary})"
    # Only a POST already inside the killed instance may fail (nginx never resends one).
    assert result.failed_writes <= workers, summary
    assert result.ok_after_kill >= operations - kill_after - 2 * workers, summary
    assert len(result.created) >= operations // 2 - workers, summary
