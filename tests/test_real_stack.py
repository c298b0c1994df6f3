"""The rendered default service's production stack, for real: its image is built with
BuildKit and its docker-compose.yml brought up with Compose v2 (`up --wait`), with nothing
but what the generated README tells a user to add to `.env`, a certificate made here, and
a mail server this test provides. Every request goes through nginx, as a client's would.

Checks: register, login and /users/me over HTTPS; a welcome mail delivered over SMTP by a
worker container, from the outbox the web replica wrote it to; the workers healthy and the
scheduler running; an upload through one replica read back through every replica; every
replica healthy as the unprivileged user on a read-only root; a client-sent
X-Forwarded-For never becomes the client address; /health and /metrics not routed; HTTP
redirected to HTTPS (the public host and port, never the client's Host) with HSTS, TLS 1.1
refused, the app seeing https; a Host other than PUBLIC_HOST refused; the README's read
replica (a streaming standby the app's lists are read from); uploads at the app's limit
reaching the app and nginx's own 413 in the app's error shape; `make rollout` after an
.env change replacing every replica while GETs and POSTs flow: zero failed, and the
workers and the scheduler recreated with the change; one replica stopped while GETs and
POSTs flow: zero failed, and every acknowledged POST stored. Figures (build cold and warm,
time to healthy, the rollout's and the stop's request counts) are printed in the run's
summary. The stack is started with the README's own `make up`; it, its volumes and the
image are removed whatever happens.
Skipped, with the reason, where no container engine can be had.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import ANY

import httpx
import pytest

from tests import containers
from tests.conftest import suite_runs
from tests.containers import Compose
from tests.rendering import SuiteRun, render

VARIANT = "default (real stack)"
API = "/api/v1"
PASSWORD = "correct horse battery staple"
# What the mail server in this test is, in the settings the README asks for.
MAIL_SETTINGS = {
    "SMTP_HOST": "mail",
    "SMTP_PORT": "1025",
    "SMTP_USERNAME": "",
    "SMTP_PASSWORD": "",
    "SMTP_SECURITY": "starttls",
    "EMAIL_FROM": "noreply@example.com",
    "PUBLIC_URL": "https://localhost",
}
STREAM_CLIENTS = 4
STREAM_MAX_REQUESTS = 6000
# Each client a user of its own, pausing between requests: under the per-user rate limit
# (600 a minute).
STREAM_PAUSE_SECONDS = 0.1
# The app's UPLOAD_MAX_BYTES (the default, 10 MiB).
UPLOAD_MAX_BYTES = 10 * 1024 * 1024


@dataclass
class Stack:
    compose: Compose
    http_url: str
    https_url: str
    ca: Path

    def client(self, **options: object) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca))
        return httpx.Client(base_url=self.https_url, verify=context, timeout=30.0, **options)  # type: ignore[arg-type]

    def app_containers(self) -> list[str]:
        containers_ = self.compose.containers("app")
        assert len(containers_) == 3, containers_
        return containers_

    def events(self, container: str, name: str) -> list[dict[str, object]]:
        """The `name` events of one container's JSON log."""
        found = []
        for line in self.compose.logs(container).splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found

    def access_log(self, container: str) -> dict[str, dict[str, object]]:
        """request id -> the app's access-log line, from one container's JSON log."""
        return {str(event.get("request_id")): event for event in self.events(container, "request")}


@pytest.fixture(scope="module")
def stack(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    docker = containers.engine()
    run_id = uuid.uuid4().hex[:8]
    work = tmp_path_factory.mktemp("real-stack")
    # The default variant; a name of its own, so its image tag is this run's alone.
    project = render(template_repo, work / "svc", {"project_slug": f"stack-{run_id}"})
    image = f"stack-{run_id}:latest"

    bases = containers.dockerfile_bases(project / "Dockerfile", {})
    services = containers.compose_images(project / "docker-compose.yml")
    seconds = containers.stand_ins(services)
    missing = [
        tag for tag in [*bases, *services.values()] if not containers.image_exists(docker, tag)
    ]
    assert not missing, f"no stand-in was built for {missing} (scripts/stand-in-images)"
    suite_runs.append(SuiteRun(VARIANT, "stand-in images ready", True, seconds))

    # Cold: no layer cache (uv's download cache, a BuildKit cache mount, may be warm).
    cold = containers.build_image(docker, project, image, no_cache=True)
    warm = containers.build_image(docker, project, image)
    built = {containers.image_id(docker, image)}
    suite_runs.append(SuiteRun(VARIANT, "image build, cold", True, cold))
    suite_runs.append(SuiteRun(VARIANT, "image build, warm", True, warm))
    print(f"\nimage build: cold {cold:.1f} s, warm {warm:.1f} s")

    http_port, https_port = containers.free_port(), containers.free_port()
    # Exactly what the README asks for, with this test's mail server and address as the
    # values: clients reach the stack at 127.0.0.1 and a port of this run's.
    settings = {**MAIL_SETTINGS, "PUBLIC_HOST": f"127.0.0.1:{https_port}"}
    asked = containers.readme_env_block(project / "README.md")
    assert set(settings) == set(asked), asked
    # And the README's read replica, so everything below runs with the app reading from
    # the stack's own streaming standby.
    settings |= containers.readme_env_block(project / "README.md", "compose-env-read-replica")
    with (project / ".env").open("a") as env_file:
        env_file.write("".join(f"{key}={value}\n" for key, value in settings.items()))
    ca = containers.self_signed_tls(project / "deploy/nginx/certs", work / "ca")
    # The mail server's certificate is this run's CA's: the replicas trust that CA through
    # SSL_CERT_FILE, read from the uploads volume, made here with the CA in it (owned by
    # the app's user, as compose would leave it).
    mail_tls = work / "mail-tls"
    containers.leaf_certificate(ca, mail_tls, "mail")

    make = shutil.which("make")
    assert make, "make is needed: the test runs the README's `make up`"
    subnet = containers.edge_subnet(docker)
    name = f"stack-{run_id}"
    compose = Compose(
        docker,
        project,
        name=name,
        files=[project / "docker-compose.yml"],
        # This host's choices, from the environment (as a shell's would be): a project
        # name of this run's, loopback only, free ports, an edge network no other stack
        # uses, and the docker CLI with BuildKit first on PATH.
        env={
            "COMPOSE_PROJECT_NAME": name,
            "PUBLISH_ADDRESS": "127.0.0.1",
            "HTTP_PORT": str(http_port),
            "HTTPS_PORT": str(https_port),
            "EDGE_SUBNET": str(subnet),
            "EDGE_NGINX_ADDRESS": str(subnet[254]),
            # One worker per replica: three replicas are already more processes than
            # this shared 2-core machine has cores.
            "WEB_CONCURRENCY": "1",
            "PATH": f"{Path(docker).parent}:{os.environ.get('PATH', '')}",
        },
    )
    mail = f"{name}-mail"
    uploads = f"{name}_uploads"
    try:
        containers._run(
            [
                docker, "volume", "create",
                "--label", f"com.docker.compose.project={name}",
                "--label", "com.docker.compose.volume=uploads",
                uploads,
            ]
        )  # fmt: skip
        seeded = containers._run(
            [
                docker, "run", "--rm", "--volume", f"{uploads}:/uploads",
                "--volume", f"{ca.parent}:/ca:ro", bases[-1], "sh", "-c",
                "cp /ca/ca.pem /uploads/.test-ca.pem && chown -R 10001:10001 /uploads",
            ]
        )  # fmt: skip
        assert seeded.returncode == 0, seeded.stderr
        with (project / ".env").open("a") as env_file:
            env_file.write("SSL_CERT_FILE=/app/var/uploads/.test-ca.pem\n")
        started = time.perf_counter()
        # The README's command, as written (the image is built already: compose reuses it).
        up = subprocess.run(
            [make, "up"],
            cwd=project,
            env={**os.environ, **compose.env},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        healthy = time.perf_counter() - started
        # `--build` in `make up`: compose builds the image again for each service that
        # has `build:` (cached, but labelled per service): those are this run's too.
        built.add(containers.image_id(docker, image))
        labelled = f"label=com.docker.compose.project={name}"
        built.update(containers._run([docker, "images", "-q", "--filter", labelled]).stdout.split())
        assert up.returncode == 0, f"make up failed:\n{up.stderr[-6000:]}\n{compose.diagnostics()}"
        suite_runs.append(SuiteRun(VARIANT, "make up (up --wait: healthy)", True, healthy))
        print(f"stack healthy after {healthy:.1f} s (make up)")
        # The mail server the README asks for, where SMTP_HOST=mail finds it.
        containers.start_mail_server(docker, mail, f"{name}_backend", bases[-1], work, mail_tls)
        yield Stack(compose, f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}", ca)
    finally:
        containers._run([docker, "rm", "--force", "--volumes", mail])
        compose.down()
        containers._run([docker, "image", "rm", "--force", image, *(built - {""})])


def _new_user(stack: Stack) -> dict[str, str]:
    """A registered, logged-in user: its email and Authorization header."""
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    with stack.client() as client:
        registered = client.post(
            f"{API}/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 202, registered.text
        login = client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
    return {"email": email, "Authorization": f"Bearer {login.json()['access_token']}"}


@pytest.fixture(scope="module")
def user(stack: Stack) -> dict[str, str]:
    return _new_user(stack)


def _auth(user: dict[str, str]) -> dict[str, str]:
    return {"Authorization": user["Authorization"]}


def test_register_login_and_me_through_nginx(stack: Stack, user: dict[str, str]) -> None:
    with stack.client() as client:
        me = client.get(f"{API}/users/me", headers=_auth(user))
    assert me.status_code == 200, me.text
    assert me.json()["email"] == user["email"]


def test_the_workers_are_healthy_and_the_scheduler_runs(stack: Stack) -> None:
    workers = stack.compose.containers("worker")
    assert len(workers) == 2, workers
    for container in workers:
        state = stack.compose.inspect(container)["State"]
        assert state["Health"]["Status"] == "healthy", (container, state)
    (scheduler,) = stack.compose.containers("scheduler")
    assert stack.compose.inspect(scheduler)["State"]["Status"] == "running"


def test_the_welcome_mail_reaches_the_mail_server(stack: Stack, user: dict[str, str]) -> None:
    """Written to the outbox by the web replica, sent by a worker container."""
    deadline = time.monotonic() + 60
    mail = f"{stack.compose.name}-mail"
    while user["email"] not in (received := stack.compose.logs(mail)):
        assert time.monotonic() < deadline, (
            f"no mail to {user['email']}:\n{received[-3000:]}\n{stack.compose.diagnostics()}"
        )
        time.sleep(0.5)
    sent = [
        event
        for container in stack.compose.containers("worker")
        for event in stack.events(container, "email_sent")
    ]
    assert [event["template"] for event in sent] == ["welcome"], sent
    for container in stack.app_containers():
        assert stack.events(container, "email_sent") == [], "a web replica sent mail itself"


def test_an_upload_through_one_replica_is_read_through_every_replica(
    stack: Stack, user: dict[str, str]
) -> None:
    content = secrets.token_bytes(50_000)
    with stack.client() as client:
        uploaded = client.post(
            f"{API}/files",
            headers=_auth(user),
            files={"file": ("report.pdf", content, "application/pdf")},
        )
        assert uploaded.status_code == 201, uploaded.text
        file_id = uploaded.json()["id"]
        served_by: set[str] = set()
        replicas = stack.app_containers()
        for attempt in range(30):
            request_id = f"read-{file_id[:8]}-{attempt}"
            response = client.get(
                f"{API}/files/{file_id}/content",
                headers={**_auth(user), "X-Request-ID": request_id},
            )
            assert response.status_code == 200, response.text
            assert response.content == content
            served_by |= {c for c in replicas if request_id in stack.access_log(c)}
            if served_by == set(replicas):
                break
    assert served_by == set(replicas), f"only {len(served_by)} of 3 replicas served the file"


def test_every_replica_is_healthy_unprivileged_on_a_read_only_root(stack: Stack) -> None:
    for container in stack.app_containers():
        state = stack.compose.inspect(container)
        assert state["State"]["Health"]["Status"] == "healthy"
        assert state["HostConfig"]["ReadonlyRootfs"] is True
        assert state["HostConfig"]["CapDrop"] == ["ALL"]
        assert state["HostConfig"]["SecurityOpt"] == ["no-new-privileges:true"]
        status = stack.compose.exec(container, "cat", "/proc/self/status").stdout
        assert re.search(r"^CapEff:\s*0+$", status, re.M), status
        assert re.search(r"^NoNewPrivs:\s*1$", status, re.M), status
        assert stack.compose.exec(container, "id", "-u").stdout.strip() == "10001"
        written = stack.compose.exec(container, "touch", "/app/anything")
        assert written.returncode != 0
        assert "Read-only file system" in written.stderr
        # The database's bootstrap password is compose's and PostgreSQL's, not the app's.
        assert "POSTGRES_PASSWORD=" in state["Config"]["Env"]
        assert not [
            entry
            for entry in state["Config"]["Env"]
            if entry.startswith("POSTGRES_PASSWORD=") and entry != "POSTGRES_PASSWORD="
        ]


def test_a_client_sent_forwarded_for_never_becomes_the_client(stack: Stack) -> None:
    forged = "203.0.113.77"
    request_id = f"forged-{uuid.uuid4().hex[:8]}"
    with stack.client() as client:
        response = client.get(
            f"{API}/users/me", headers={"X-Forwarded-For": forged, "X-Request-ID": request_id}
        )
    assert response.status_code == 401
    logged = [stack.access_log(c).get(request_id) for c in stack.app_containers()]
    (line,) = [entry for entry in logged if entry]
    assert line["client"] != forged
    # The address nginx saw: the edge network's gateway, where published ports arrive.
    assert str(line["client"]).startswith(stack.compose.env["EDGE_SUBNET"].rsplit(".", 1)[0])
    for container in stack.app_containers():
        assert forged not in stack.compose.logs(container)


def _remaining_with_forged_addresses(stack: Stack) -> list[int]:
    with stack.client() as client:
        return [
            int(
                client.get(f"{API}/users/me", headers={"X-Forwarded-For": forged}).headers[
                    "ratelimit-remaining"
                ]
            )
            for forged in ("198.51.100.1", "198.51.100.2", "198.51.100.3")
        ]


def test_a_forged_forwarded_for_does_not_get_a_rate_limit_of_its_own(stack: Stack) -> None:
    """Anonymous requests count per client address: three claiming three addresses draw
    from one allowance (the address nginx saw), not from three fresh ones."""
    remaining = _remaining_with_forged_addresses(stack)
    if remaining != sorted(remaining, reverse=True):  # the window turned over: once more
        remaining = _remaining_with_forged_addresses(stack)
    assert remaining[1:] == [remaining[0] - 1, remaining[0] - 2], remaining


def test_health_and_metrics_are_not_routed_from_outside(stack: Stack) -> None:
    with stack.client() as client:
        for path in ("/health/live", "/health/ready", "/health", "/metrics"):
            assert client.get(path).status_code == 404, path
    # ...while the replicas answer them inside the network (Docker's health checks).
    replica = stack.app_containers()[0]
    probe = (
        "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8000/health/ready').status)"
    )
    assert stack.compose.exec(replica, "python", "-c", probe).stdout.strip() == "200"


def test_the_stacks_read_replica_serves_the_lists(
    stack: Stack, stream_users: list[dict[str, str]]
) -> None:
    """The README's read replica: postgres-standby is a streaming standby of postgres,
    every app replica reads it (ready `ok`, the replica usable, not `degraded`), and a
    caller's article lists are read there, counted on the standby's side."""
    (standby,) = stack.compose.containers("postgres-standby")
    database = stack.compose.name.replace("-", "_")  # the project slug's identifier

    def on_standby(sql: str) -> str:
        result = stack.compose.exec(standby, "psql", "-U", database, "-d", database, "-Atc", sql)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert on_standby("SELECT pg_is_in_recovery()") == "t"
    probe = (
        "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8000/health/ready')"
        ".read().decode())"
    )
    for container in stack.app_containers():
        ready: dict[str, object] = {}
        deadline = time.monotonic() + 30  # the first checks may predate the standby
        while time.monotonic() < deadline:
            ready = json.loads(stack.compose.exec(container, "python", "-c", probe).stdout)
            if ready["status"] == "ok":
                break
            time.sleep(1)
        assert ready["status"] == "ok", ready
        assert ready["replicas"] == [
            {"name": f"postgres-standby:5432/{database}", "state": "ok", "lag_seconds": ANY}
        ], ready

    # The standby's own count of reads of the articles table (the replica checks read
    # none): a server's backends report theirs within seconds, not at once.
    scans = (
        "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables"
        " WHERE relname = 'articles'"
    )
    before = int(on_standby(scans))
    # A caller who has written nothing yet (registering and logging in are anonymous;
    # the users are the later tests'), each page size a list no cache holds yet.
    with stack.client() as client:
        for limit in range(1, 7):
            listed = client.get(
                f"{API}/articles", params={"limit": limit}, headers=_auth(stream_users[0])
            )
            assert listed.status_code == 200, listed.text
    after = before
    deadline = time.monotonic() + 30
    while after == before and time.monotonic() < deadline:
        time.sleep(1)
        after = int(on_standby(scans))
    assert after > before, "no article list was read on the standby"


def test_http_redirects_to_https_with_hsts_and_the_app_makes_no_absolute_link(
    stack: Stack, user: dict[str, str]
) -> None:
    # To the public host and its port, whatever Host the client sent.
    for host in (None, "evil.com"):
        redirect = httpx.get(
            f"{stack.http_url}{API}/users/me?x=1",
            headers={"Host": host} if host else {},
            follow_redirects=False,
        )
        assert redirect.status_code == 308  # the method and body kept (RFC 9110, 15.4.9)
        assert redirect.headers["location"] == f"{stack.https_url}{API}/users/me?x=1"
    with stack.client() as client:
        me = client.get(f"{API}/users/me", headers=_auth(user))
        assert me.headers["strict-transport-security"] == "max-age=63072000"
        # The app makes no absolute link (no slash redirect: a 404 in the error shape;
        # download links are paths), so no scheme or host it was told can leak into one.
        slash = client.get(f"{API}/users/me/", headers=_auth(user))
        assert slash.status_code == 404
        assert slash.json()["error"]["code"] == "not_found"
        uploaded = client.post(
            f"{API}/files",
            headers=_auth(user),
            files={"file": ("note.txt", b"hello", "text/plain")},
        )
        assert uploaded.status_code == 201, uploaded.text
        download_url = uploaded.json()["download_url"]
        assert download_url == f"{API}/files/{uploaded.json()['id']}/content"
        assert client.get(download_url, headers=_auth(user)).content == b"hello"


def _edge_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "request_id"}, error
    assert error["code"] == code
    # nginx's error location adds headers of its own, which once dropped the server's HSTS.
    assert response.headers.get("strict-transport-security") == "max-age=63072000"


def test_a_host_other_than_the_public_host_is_refused(stack: Stack, user: dict[str, str]) -> None:
    with stack.client() as client:
        refused = client.get(f"{API}/users/me/", headers={**_auth(user), "Host": "evil.com"})
        _edge_error(refused, 421, "misdirected_request")
        assert "evil.com" not in refused.text


def test_uploads_at_the_limit_reach_the_app_and_larger_bodies_get_json_413(
    stack: Stack, user: dict[str, str]
) -> None:
    with stack.client() as client:

        def upload(size: int) -> httpx.Response:
            content = b"%PDF-1.4\n" + b"0" * (size - 9)
            return client.post(
                f"{API}/files",
                headers=_auth(user),
                files={"file": ("big.pdf", content, "application/pdf")},
            )

        assert upload(10_485_700).status_code == 201  # the tester's file: nginx's 413 before
        assert upload(UPLOAD_MAX_BYTES).status_code == 201
        _edge_error(upload(UPLOAD_MAX_BYTES + 1), 413, "payload_too_large")  # the app's
        # Beyond any upload: nginx refuses it, in the same shape.
        _edge_error(
            client.post(f"{API}/files", headers=_auth(user), content=b"0" * (12 * 1024 * 1024)),
            413,
            "payload_too_large",
        )


def _handshake(stack: Stack, version: ssl.TLSVersion) -> str:
    """The negotiated protocol with a client offering only `version`, or the error."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(stack.ca))
    # Let this client offer old protocols at all: the server must be the one refusing.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = context.maximum_version = version
    host, port = stack.https_url.removeprefix("https://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                return str(tls.version())
        except ssl.SSLError as error:
            return f"refused: {error.reason}"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_1_2_and_1_3_only(stack: Stack) -> None:
    assert _handshake(stack, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    assert _handshake(stack, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    refused = _handshake(stack, ssl.TLSVersion.TLSv1_1)
    # The server's alert, not this client's refusal to offer TLS 1.1.
    assert refused == "refused: TLSV1_ALERT_PROTOCOL_VERSION", refused


@dataclass
class Outcome:
    request_id: str
    method: str
    status: int | str
    seconds: float


class RequestStream:
    """STREAM_CLIENTS clients, each a user of its own, sending GET /users/me and
    POST /articles in turn through nginx until stopped (or STREAM_MAX_REQUESTS)."""

    def __init__(self, stack: Stack, users: list[dict[str, str]], label: str) -> None:
        self.stack, self.users, self.label = stack, users, label
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(len(users))]

    def __enter__(self) -> RequestStream:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def _run(self, worker: int) -> None:
        headers = _auth(self.users[worker])
        with self.stack.client() as client:
            n = 0
            while not self._done.is_set() and self.count() < STREAM_MAX_REQUESTS:
                request_id = f"{self.label}-{worker}-{n}"
                method = "POST" if n % 2 else "GET"
                n += 1
                started = time.perf_counter()
                try:
                    if method == "POST":
                        response = client.post(
                            f"{API}/articles",
                            json={"title": request_id, "content": "x"},
                            headers={**headers, "X-Request-ID": request_id},
                        )
                    else:
                        response = client.get(
                            f"{API}/users/me", headers={**headers, "X-Request-ID": request_id}
                        )
                    status: int | str = response.status_code
                except httpx.HTTPError as error:
                    status = repr(error)
                with self._lock:
                    self.outcomes.append(
                        Outcome(request_id, method, status, time.perf_counter() - started)
                    )
                time.sleep(STREAM_PAUSE_SECONDS)

    def failed(self) -> list[tuple[str, int | str]]:
        expected = {"GET": 200, "POST": 201}
        return [(o.request_id, o.status) for o in self.outcomes if o.status != expected[o.method]]

    def report(self, what: str, extra: str = "") -> str:
        failed = self.failed()
        posts = sum(1 for o in self.outcomes if o.method == "POST")
        slowest = max((o.seconds for o in self.outcomes), default=0.0)
        line = (
            f"{what}: {len(self.outcomes)} requests ({posts} POST), {len(failed)} failed, "
            f"slowest {slowest * 1000:.0f} ms{extra}"
        )
        print(f"\n{line}")
        suite_runs.append(
            SuiteRun(
                VARIANT, f"{what}: {len(failed)}/{len(self.outcomes)} failed", not failed, slowest
            )
        )
        return line


@pytest.fixture(scope="module")
def stream_users(stack: Stack) -> list[dict[str, str]]:
    return [_new_user(stack) for _ in range(STREAM_CLIENTS)]


def test_make_rollout_replaces_every_replica_with_no_failed_request(
    stack: Stack, stream_users: list[dict[str, str]]
) -> None:
    """A changed .env (what made `make up` recreate every replica at once) rolled out with
    `make rollout` while GETs and POSTs flow: every replica replaced, none failed."""
    old = set(stack.app_containers())
    with (stack.compose.project / ".env").open("a") as env_file:
        env_file.write("DATABASE_POOL_SIZE=9\n")
    make = shutil.which("make")
    assert make
    with RequestStream(stack, stream_users, "rollout") as stream:
        time.sleep(1.0)
        started = time.perf_counter()
        rollout = subprocess.run(
            [make, "rollout"],
            cwd=stack.compose.project,
            env={**os.environ, **stack.compose.env},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        seconds = time.perf_counter() - started
        time.sleep(2.0)
    assert rollout.returncode == 0, f"{rollout.stdout[-3000:]}\n{rollout.stderr[-6000:]}"
    stream.report("make rollout", f", took {seconds:.1f} s")
    assert not stream.failed(), stream.failed()[:10]
    new = set(stack.app_containers())
    assert not new & old, "every replica was replaced"
    for container in new:
        assert "DATABASE_POOL_SIZE=9" in stack.compose.inspect(container)["Config"]["Env"]
    background = stack.compose.containers("worker") + stack.compose.containers("scheduler")
    assert len(background) == 3, background
    for container in background:
        assert "DATABASE_POOL_SIZE=9" in stack.compose.inspect(container)["Config"]["Env"]
    assert len(stream.outcomes) > 100, "the stream went on during the rollout"


# Last in the module: it leaves one replica stopped.
def test_a_replica_stopped_while_requests_flow_costs_no_failed_request(
    stack: Stack, stream_users: list[dict[str, str]]
) -> None:
    victim = stack.app_containers()[0]
    with RequestStream(stack, stream_users, "stop") as stream:
        time.sleep(1.0)
        before = stream.count()
        stopping = time.perf_counter()
        stopped = containers._run([stack.compose.docker, "stop", victim], timeout=60)
        stop_seconds = time.perf_counter() - stopping
        assert stopped.returncode == 0, stopped.stderr
        time.sleep(2.0)
    stream.report(
        "replica stop",
        f" ({before} before the stop), docker stop took {stop_seconds:.1f} s",
    )
    assert not stream.failed(), stream.failed()[:10]
    # The stopped replica was in the rotation while the stream flowed.
    served = stack.access_log(victim)
    assert any(o.request_id in served for o in stream.outcomes), (
        "the stopped replica served nothing"
    )
    assert len(stream.outcomes) > before + 20, "the stream did not go on after the stop"
