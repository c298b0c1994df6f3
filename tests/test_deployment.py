"""Deployment files of each `deployment` answer: only its files render, nginx accepts the
config (`nginx -t`), and the compose file and Kubernetes manifests have what production
needs (probes, non-root, resources, replicas, migration ordering, no secret values).
Kubernetes manifests are also validated against the API schemas (kubernetes-validate,
offline). No container engine is needed.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from tests import matrix
from tests.deploy_support import (
    Nginx,
    find_or_install_nginx,
    free_port,
    local_nginx_config,
    shipped_nginx_config,
    wait_until,
)
from tests.rendering import render

DEPLOYMENTS = matrix.toggles()["deployment"]
# What the compose `migrate` service and the Kubernetes migration Job run.
MIGRATE_AND_SEED = ["sh", "-c", "alembic upgrade head && python -m app.cli seed"]
KUBERNETES_VERSION = "1.30"  # the oldest Kubernetes release still commonly supported

COMPOSE_FILES = [
    "docker-compose.yml",
    "docker-compose.override.yml",
    "deploy/nginx/nginx.conf",
    "deploy/nginx/https.conf",
    "deploy/nginx/http.conf",
    "deploy/nginx/proxy.conf",
    "deploy/nginx/certs/.gitignore",
    "deploy/rollout.sh",
    "deploy/pgbouncer/Dockerfile",
    "deploy/pgbouncer/entrypoint.sh",
    "deploy/pgbouncer/pgbouncer.ini",
]
KUBERNETES_FILES = [
    "deploy/kubernetes/README.md",
    "deploy/kubernetes/config/kustomization.yaml",
    "deploy/kubernetes/config/configmap.yaml",
    "deploy/kubernetes/config/secret.example.yaml",
    "deploy/kubernetes/app/kustomization.yaml",
    "deploy/kubernetes/app/deployment.yaml",
    "deploy/kubernetes/app/service.yaml",
    "deploy/kubernetes/app/ingress.yaml",
    "deploy/kubernetes/app/httproute.yaml",
    "deploy/kubernetes/app/uploads-pvc.yaml",
    "deploy/kubernetes/app/hpa.yaml",
    "deploy/kubernetes/app/pdb.yaml",
    "deploy/kubernetes/app/worker.yaml",
    "deploy/kubernetes/app/scheduler.yaml",
    "deploy/kubernetes/migrate/kustomization.yaml",
    "deploy/kubernetes/migrate/job.yaml",
    "deploy/kubernetes/pgbouncer/kustomization.yaml",
    "deploy/kubernetes/pgbouncer/deployment.yaml",
    "deploy/kubernetes/pgbouncer/service.yaml",
    "deploy/kubernetes/pgbouncer/pgbouncer.ini",
    "deploy/kubernetes/pgbouncer/secret.example.yaml",
    "deploy/pgbouncer/Dockerfile",
    "deploy/pgbouncer/entrypoint.sh",
]
EVERY_ANSWER_FILES = ["Dockerfile", ".dockerignore"]
EXPECTED_FILES = {
    "compose": COMPOSE_FILES,
    "kubernetes": KUBERNETES_FILES,
    "both": COMPOSE_FILES + KUBERNETES_FILES,
}


@pytest.fixture(scope="module")
def rendered(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One service per `deployment` answer, other answers at their defaults."""
    return {
        answer: render(
            template_repo,
            tmp_path_factory.mktemp(f"deploy-{answer}") / "svc",
            {"deployment": answer},
        )
        for answer in DEPLOYMENTS
    }


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Nginx:
    return Nginx(find_or_install_nginx(), tmp_path_factory.mktemp("nginx"))


def _deployment_files(project: Path) -> set[str]:
    found = {str(path.relative_to(project)) for path in (project / "deploy").rglob("*")}
    found = {name for name in found if (project / name).is_file()}
    return found | {name for name in COMPOSE_FILES if (project / name).is_file()}


def test_the_expected_answers_are_offered() -> None:
    assert DEPLOYMENTS == ["compose", "kubernetes", "both"]
    assert matrix.defaults()["deployment"] == "both"


@pytest.mark.parametrize("answer", DEPLOYMENTS)
def test_each_answer_renders_only_its_files(rendered: dict[str, Path], answer: str) -> None:
    project = rendered[answer]
    assert _deployment_files(project) == set(EXPECTED_FILES[answer]), answer
    for name in EVERY_ANSWER_FILES:
        assert (project / name).is_file(), f"[{answer}] {name} missing"
    readme = (project / "README.md").read_text()
    makefile = (project / "Makefile").read_text()
    compose, kubernetes = answer in {"compose", "both"}, answer in {"kubernetes", "both"}
    assert ("### Docker Compose" in readme) == compose, answer
    assert ("### Kubernetes" in readme) == kubernetes, answer
    assert ("\nup:" in makefile) == compose, answer
    assert ("\nkube-deploy:" in makefile) == kubernetes, answer
    assert ("POSTGRES_PASSWORD=" in (project / ".env").read_text()) == compose, answer


# Container image ---------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_with_healthcheck(rendered: dict[str, Path]) -> None:
    dockerfile = (rendered["both"] / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\w+)", dockerfile, re.MULTILINE)
    assert [stage for _, stage in stages] == ["build", "runtime"]
    assert stages[0][0].startswith("ghcr.io/astral-sh/uv:"), "the build stage installs with uv"
    assert "-slim" in stages[1][0], "the final stage is a slim image"
    # The lock is the one the checks ran against: `--locked` fails the build on a stale one.
    assert "uv sync --locked --no-dev" in dockerfile
    final = dockerfile.split(" AS runtime", 1)[1]
    assert "uv " not in final.replace("uv sync", ""), "uv must not reach the final stage"
    assert re.search(r"^USER 10001:10001$", final, re.MULTILINE), "runs as a numeric non-root user"
    healthcheck = re.search(r"^HEALTHCHECK .*\n.*$", final, re.MULTILINE)
    assert healthcheck, "no HEALTHCHECK"
    assert "urllib.request" in healthcheck.group(0), "healthcheck must not need curl"
    assert "/health/live" in healthcheck.group(0)
    command = re.search(r"^CMD \[(.*?)\]$", final, re.MULTILINE | re.DOTALL)
    assert command, "no exec-form CMD"
    for flag in ('"--factory"', '"--no-proxy-headers"', '"--timeout-graceful-shutdown"'):
        assert flag in command.group(1), flag
    assert "WEB_CONCURRENCY=" in final, "worker count comes from the environment"


def test_dockerignore_keeps_secrets_and_local_state_out(rendered: dict[str, Path]) -> None:
    lines = (rendered["both"] / ".dockerignore").read_text().split("\n")
    assert "*" in lines, "allow-list: ignore everything, then name what the image needs"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "uv.lock", "README.md", "app", "alembic", "alembic.ini"}


# nginx -------------------------------------------------------------------------------


def _test_certificate(directory: Path) -> Path:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make a test certificate for the TLS server")
    directory.mkdir(exist_ok=True)
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(directory / "privkey.pem"),
            "-out",
            str(directory / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return directory


@pytest.mark.parametrize("site", ["https", "http"])
def test_nginx_config_passes_nginx_t(rendered: dict[str, Path], nginx: Nginx, site: str) -> None:
    certs = _test_certificate(nginx.prefix / "certs")
    shipped = shipped_nginx_config(rendered["compose"], site, certs=certs)
    # "app" is resolved per request (Docker's DNS), so the file is checked as shipped.
    config = nginx.prefix / f"nginx-{site}.conf"
    config.write_text(shipped)
    result = nginx.check(config)
    assert result.returncode == 0, f"{result.stderr}\n{config.read_text()}"
    assert "test is successful" in result.stderr


def test_nginx_https_site_redirects_and_offers_modern_tls_only(rendered: dict[str, Path]) -> None:
    site = (rendered["compose"] / "deploy/nginx/https.conf").read_text()
    plain, tls = site.split("listen 443 ssl;")
    assert "return 308 https://$public_host$request_uri;" in plain, "never the client's Host"
    assert "include /etc/nginx/proxy.conf;" not in plain, "plain HTTP only redirects"
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in tls
    ciphers = re.search(r"ssl_ciphers (\S+);", tls)
    assert ciphers
    for cipher in ciphers.group(1).split(":"):
        assert cipher.startswith("ECDHE-"), "forward secrecy"
        assert "GCM" in cipher or "CHACHA20" in cipher, f"{cipher}: not an AEAD cipher"
    assert 'add_header Strict-Transport-Security "max-age=63072000" always;' in tls
    assert "ssl_certificate /etc/nginx/certs/fullchain.pem;" in tls
    assert "include /etc/nginx/proxy.conf;" in tls


def test_nginx_passes_the_client_to_the_app(rendered: dict[str, Path]) -> None:
    config = (rendered["compose"] / "deploy/nginx/proxy.conf").read_text()
    for header in (
        # Replaced, not appended to: what a client sends never reaches the app.
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Request-ID $edge_request_id;",
        "proxy_set_header Host $http_host;",
    ):
        assert header in config, header
    assert "proxy_next_upstream error timeout;" in config, "an answer is never passed on"
    assert "proxy_connect_timeout 500ms;" in config, "a gone replica is skipped quickly"
    assert "non_idempotent" not in config, "a POST that reached a replica must not be resent"
    assert re.search(r"location = /metrics \{\s*return 404;", config), "/metrics is internal"
    assert re.search(r"location ~ \^/health\(/\|\$\) \{\s*return 404;", config), "/health too"
    nginx_conf = (rendered["compose"] / "deploy/nginx/nginx.conf").read_text()
    # "app" is looked up again every second, and no idle connection to a replica is kept
    # (a stopping replica would close it under a request on its way in).
    assert "resolver 127.0.0.11 valid=1s" in nginx_conf
    assert "set $app_upstream app:8000;" in config
    assert "keepalive " not in nginx_conf.replace("keepalive_timeout", "")


class _Replica(BaseHTTPRequestHandler):
    """A stand-in replica behind the edge: reads the body, answers with the Host it got."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.do_GET()

    def do_GET(self) -> None:
        body = json.dumps({"host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def edge(rendered: dict[str, Path], nginx: Nginx) -> Iterator[str]:
    """The shipped nginx config (plain-HTTP site) serving on loopback, its public host
    its own address, in front of one stand-in replica and one address nobody listens on."""
    replica = ThreadingHTTPServer(("127.0.0.1", 0), _Replica)
    threading.Thread(target=replica.serve_forever, daemon=True).start()
    listen = f"127.0.0.1:{free_port()}"
    config = nginx.prefix / "edge.conf"
    config.write_text(
        local_nginx_config(
            rendered["compose"], upstreams=[f"127.0.0.1:{replica.server_port}"], listen=listen
        )
    )
    try:
        with nginx.running(config):
            wait_until(f"http://{listen}/nginx-health", timeout=30)
            yield f"http://{listen}"
    finally:
        replica.shutdown()


def _edge_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] == code
    assert error["request_id"]


def test_nginx_passes_an_upload_at_the_app_limit_and_answers_its_own_errors_in_json(
    edge: str,
) -> None:
    """UPLOAD_MAX_BYTES of file plus its multipart framing reaches the app (which decides);
    only a body no setting allows is nginx's 413, in the app's error shape."""
    at_limit = b"x" * (10 * 1024 * 1024)
    passed = httpx.post(f"{edge}/api/v1/files", files={"file": ("a.pdf", at_limit)}, timeout=30)
    assert passed.status_code == 200, passed.text
    too_large = httpx.post(f"{edge}/api/v1/files", content=b"x" * (12 * 1024 * 1024), timeout=30)
    _edge_error(too_large, 413, "payload_too_large")
    assert "retry-after" not in too_large.headers


def test_nginx_serves_only_the_public_host_and_forwards_its_port(edge: str) -> None:
    forwarded = httpx.get(f"{edge}/anything")
    assert forwarded.json() == {"host": edge.removeprefix("http://")}, "port included"
    _edge_error(
        httpx.get(f"{edge}/anything", headers={"Host": "evil.com"}), 421, "misdirected_request"
    )
    # nginx's own health check is served whatever the Host (Docker's probe uses 127.0.0.1).
    assert httpx.get(f"{edge}/nginx-health", headers={"Host": "evil.com"}).status_code == 200


# How long the stand-in replicas below take to answer their 503.
UNAVAILABLE_SECONDS = 1.0
UNAVAILABLE_BODY = {
    "error": {
        "code": "service_unavailable",
        "message": "File storage is unavailable",
        "details": None,
        "request_id": "r",
    }
}


class _Unavailable(BaseHTTPRequestHandler):
    """A stand-in replica whose backing service is down: it waits for it, then answers
    the app's 503 with Retry-After, counting the requests it got."""

    def do_GET(self) -> None:
        self.server.requests += 1  # type: ignore[attr-defined]
        time.sleep(UNAVAILABLE_SECONDS)
        body = json.dumps(UNAVAILABLE_BODY).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "5")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_nginx_passes_on_unreachable_replicas_but_never_the_apps_503(
    rendered: dict[str, Path], nginx: Nginx, tmp_path: Path
) -> None:
    """A 503 is the app's answer that a backing service is down: trying another replica
    would make the client wait for it twice. Only a replica that cannot be reached is
    skipped (here one address nobody listens on, first in the rotation)."""
    replicas = [ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable) for _ in range(2)]
    for replica in replicas:
        replica.requests = 0  # type: ignore[attr-defined]
        threading.Thread(target=replica.serve_forever, daemon=True).start()
    nobody = f"127.0.0.1:{free_port()}"
    listen = f"127.0.0.1:{free_port()}"
    upstreams = [nobody, *(f"127.0.0.1:{replica.server_port}" for replica in replicas)]
    edge_nginx = Nginx(nginx.binary, tmp_path)
    config = tmp_path / "edge.conf"
    config.write_text(local_nginx_config(rendered["compose"], upstreams=upstreams, listen=listen))
    answers: list[tuple[httpx.Response, float]] = []
    try:
        with edge_nginx.running(config):
            wait_until(f"http://{listen}/nginx-health", timeout=30)
            for _ in range(4):
                started = time.monotonic()
                response = httpx.get(f"http://{listen}/api/v1/files/1/content", timeout=30)
                answers.append((response, time.monotonic() - started))
    finally:
        for replica in replicas:
            replica.shutdown()

    for response, seconds in answers:
        assert response.status_code == 503, response.text
        assert response.json() == UNAVAILABLE_BODY, "the app's answer, not nginx's"
        assert response.headers["retry-after"] == "5"
        assert seconds < 2 * UNAVAILABLE_SECONDS, f"{seconds:.1f} s: waited on two replicas"
    served = [replica.requests for replica in replicas]  # type: ignore[attr-defined]
    assert sum(served) == len(answers), f"requests per replica: {served}"


def _raw_answer(edge: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes no HTTP client would; the status, headers and body nginx answers."""
    host, port = edge.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines)
    }
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400, "bad_request"),
        (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
            431,
            "request_header_fields_too_large",
        ),
    ],
)
def test_a_request_nginx_cannot_parse_is_answered_in_the_error_shape(
    edge: str, request_bytes: bytes, status: int, code: str
) -> None:
    """Behind the edge no malformed request reaches the app's server (uvicorn would
    answer it in plain text): nginx answers it, in the app's error shape."""
    answered, headers, body = _raw_answer(edge, request_bytes)
    assert answered == status, body
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "details", "request_id"}


IDLE_FLOOD = 2500  # above what the old 1024 connections per worker allowed on 2 cores


def test_a_flood_of_idle_connections_from_one_client_does_not_stop_another(edge: str) -> None:
    host, port = edge.removeprefix("http://").split(":")
    flood: list[socket.socket] = []
    try:
        for _ in range(IDLE_FLOOD):
            connection = socket.create_connection((host, int(port)), timeout=5)
            connection.send(b"GET / HTTP/1.1\r\n")  # a request header never finished
            flood.append(connection)
        served = httpx.get(f"{edge}/anything", timeout=10)
        assert served.status_code == 200, served.text
    finally:
        for connection in flood:
            connection.close()


def _size(value: str) -> int:
    """An nginx size ("11m", "512k", "100") in bytes."""
    units = {"k": 1024, "m": 1024 * 1024, "g": 1024**3}
    return int(value[:-1]) * units[value[-1].lower()] if value[-1].isalpha() else int(value)


def _app_body_limit(project: Path) -> int:
    """The largest upload body the app accepts: UPLOAD_MAX_BYTES plus its framing."""
    config = (project / "app/core/config.py").read_text()
    uploads = (project / "app/routes/uploads.py").read_text()
    limit = re.search(r"upload_max_bytes: int = Field\(default=([\d* ]+),", config)
    overhead = re.search(r"^MULTIPART_OVERHEAD_BYTES = ([\d* ]+)$", uploads, re.M)
    assert limit, "UPLOAD_MAX_BYTES's default moved"
    assert overhead, "MULTIPART_OVERHEAD_BYTES moved"
    return sum(
        math.prod(int(factor) for factor in product.split("*"))
        for product in (limit.group(1), overhead.group(1))
    )


def test_the_edge_lets_every_upload_the_app_accepts_through(rendered: dict[str, Path]) -> None:
    project = rendered["both"]
    nginx_conf = (project / "deploy/nginx/nginx.conf").read_text()
    nginx_limit = re.search(r"^\s*client_max_body_size (\w+);", nginx_conf, re.M)
    assert nginx_limit
    ingress = yaml.safe_load((project / "deploy/kubernetes/app/ingress.yaml").read_text())
    ingress_limit = ingress["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/proxy-body-size"
    ]
    for limit in (nginx_limit.group(1), ingress_limit):
        assert _size(limit) >= _app_body_limit(project), limit


def test_nginx_closes_idle_clients_quickly(rendered: dict[str, Path]) -> None:
    config = (rendered["compose"] / "deploy/nginx/nginx.conf").read_text()
    for directive in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        seconds = re.search(rf"^\s*{directive} (\d+)s;", config, re.M)
        assert seconds, directive
        assert int(seconds.group(1)) <= 15, directive
    assert re.search(r"^\s*limit_conn per_client \d+;", config, re.M)


# Docker Compose ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose(rendered: dict[str, Path]) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (rendered["compose"] / "docker-compose.yml").read_text()
    )
    return loaded


def test_compose_runs_replicas_behind_nginx(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        "nginx",
        "app",
        "migrate",
        "worker",
        "scheduler",
        "postgres",
        "postgres-standby",
        "redis",
        "pgbouncer",
    }
    assert services["app"]["deploy"]["replicas"] >= 2
    assert "ports" not in services["app"], "replicas are reached through nginx only"
    assert "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    assert (
        "./deploy/nginx/${NGINX_SITE:-https}.conf:/etc/nginx/site.conf:ro"
        in services["nginx"]["volumes"]
    ), "TLS at nginx unless NGINX_SITE=http"
    assert "./deploy/nginx/certs:/etc/nginx/certs:ro" in services["nginx"]["volumes"]
    assert services["nginx"]["depends_on"]["app"]["condition"] == "service_healthy"
    assert int(services["app"]["stop_grace_period"].rstrip("s")) > 25, "above uvicorn's 25 s"


LOOPBACK = {"127.0.0.1/32", "::1/128"}


def test_compose_read_replica_is_an_optional_streaming_standby(compose: dict[str, Any]) -> None:
    services = compose["services"]
    standby = services["postgres-standby"]
    assert standby["profiles"] == ["read-replica"], "started only with COMPOSE_PROFILES"
    assert standby["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_basebackup -h postgres" in standby["command"][-1]
    assert " -R " in standby["command"][-1], "a standby that follows the primary"
    assert standby["networks"] == ["backend"]
    assert "postgres-standby" not in str(services["app"].get("depends_on")), "optional for the app"
    # Switched on by READ_REPLICA alone: COMPOSE_PROFILES may name other profiles too.
    replicas = services["app"]["environment"]["DATABASE_REPLICA_URLS"]
    assert replicas.startswith("${READ_REPLICA:+[")
    assert "@${READ_REPLICA}:5432/" in replicas
    rules = [line.split() for line in compose["configs"]["postgres-hba"]["content"].splitlines()]
    assert ["host", "replication", "all", "all", "scram-sha-256"] in rules
    # Trust only inside the container; over the network, passwords.
    remote = [rule for rule in rules if rule[0] == "host" and rule[3] not in LOOPBACK]
    assert remote
    assert {rule[-1] for rule in remote} == {"scram-sha-256"}


def test_compose_runs_workers_with_a_heartbeat_check_a_graceful_stop_and_limits(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    worker, scheduler = services["worker"], services["scheduler"]
    assert worker["command"][:2] == ["taskiq", "worker"]
    assert scheduler["command"][:2] == ["taskiq", "scheduler"]
    assert worker["healthcheck"]["test"] == ["CMD", "python", "-m", "app.worker.health"]
    assert scheduler["healthcheck"]["test"] == [
        "CMD",
        "python",
        "-m",
        "app.worker.health",
        "scheduler",
    ]
    assert int(worker["stop_grace_period"].rstrip("s")) > 25, "above the wait for jobs in hand"
    for name in ("worker", "scheduler"):
        assert {"cpus", "memory"} <= set(services[name]["deploy"]["resources"]["limits"]), name
    assert "worker" not in services["app"].get("depends_on", {}), "readiness owes nothing to it"


def test_compose_app_containers_have_no_capabilities(compose: dict[str, Any]) -> None:
    for name in ("app", "migrate", "worker", "scheduler"):
        service = compose["services"][name]
        assert service["cap_drop"] == ["ALL"], name
        assert service["security_opt"] == ["no-new-privileges:true"], name
        assert service["read_only"] is True, name


def test_compose_gives_nginx_the_public_host(compose: dict[str, Any]) -> None:
    nginx = compose["services"]["nginx"]
    assert nginx["configs"] == [{"source": "nginx-public", "target": "/etc/nginx/public.conf"}]
    content = compose["configs"]["nginx-public"]["content"]
    assert 'default "${PUBLIC_HOST:-localhost}";' in content
    assert content.startswith("map $$host $$public_host {"), "nginx variables, escaped"


def test_make_rollout_replaces_replicas_one_at_a_time(rendered: dict[str, Path]) -> None:
    project = rendered["compose"]
    assert "\nrollout:" in (project / "Makefile").read_text()
    script = (project / "deploy/rollout.sh").read_text()
    checked = subprocess.run(["sh", "-n", str(project / "deploy/rollout.sh")], check=False)
    assert checked.returncode == 0
    # A new replica healthy (--wait) before each old one is stopped; never a recreate.
    start = script.index("--no-recreate --wait --scale")
    assert start < script.index('docker stop "$container"')
    assert "run --rm --no-deps migrate" in script


def test_compose_migrates_before_the_app_starts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == MIGRATE_AND_SEED
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["depends_on"]["redis"]["condition"] == "service_healthy"
    depends = services["app"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"


def test_compose_data_services_have_volumes_and_healthchecks(compose: dict[str, Any]) -> None:
    for name in ("postgres", "redis"):
        service = compose["services"][name]
        assert service["healthcheck"]["test"], name
        volume = service["volumes"][0].split(":")[0]
        assert volume in compose["volumes"], f"{name} keeps its data in a named volume"
    assert compose["networks"]["backend"]["internal"] is True


def test_compose_holds_no_secret_values(compose: dict[str, Any]) -> None:
    app = compose["services"]["app"]
    assert app["env_file"] == ".env"
    # .env holds the database's bootstrap password too: blanked for the app containers.
    assert app["environment"]["POSTGRES_PASSWORD"] == ""
    for service_name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if (
                service_name in ("app", "migrate", "worker", "scheduler")
                and key == "POSTGRES_PASSWORD"
            ):
                continue
            if re.search(r"PASSWORD|SECRET|DSN", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), (service_name, key)
            if key == "DATABASE_URL":
                assert ":${POSTGRES_PASSWORD:?" in value, "the password comes from .env"


def test_compose_offers_pgbouncer_in_transaction_mode_as_a_profile(
    rendered: dict[str, Path], compose: dict[str, Any]
) -> None:
    services = compose["services"]
    pooler = services["pgbouncer"]
    assert pooler["profiles"] == ["pgbouncer"], "off unless asked for"
    assert pooler["build"] == "./deploy/pgbouncer"
    assert pooler["read_only"] is True
    assert pooler["cap_drop"] == ["ALL"]
    assert pooler["tmpfs"] == ["/tmp"], "where the entrypoint writes the login file"
    assert "edge" not in pooler["networks"]
    assert pooler["volumes"] == ["./deploy/pgbouncer/pgbouncer.ini:/etc/pgbouncer/pgbouncer.ini:ro"]
    settings = (rendered["compose"] / "deploy/pgbouncer/pgbouncer.ini").read_text().splitlines()
    assert "pool_mode = transaction" in settings
    assert "auth_file = /tmp/userlist.txt" in settings
    assert pooler["environment"]["DATABASE_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    for name in ("app", "migrate"):
        assert services[name]["depends_on"]["pgbouncer"] == {
            "condition": "service_healthy",
            "required": False,
        }, name
    environment = services["app"]["environment"]
    # PostgreSQL itself unless .env says otherwise; migrations always past PgBouncer.
    assert "@${DATABASE_ADDRESS:-postgres:5432}/" in environment["DATABASE_URL"]
    assert "@postgres:5432/" in environment["DATABASE_MIGRATION_URL"]
    assert environment["REDIS_URL"] == "${EXTERNAL_REDIS_URL:-redis://redis:6379/0}"
    dockerfile = (rendered["compose"] / "deploy/pgbouncer/Dockerfile").read_text()
    assert "apt-get install -y --no-install-recommends pgbouncer" in dockerfile
    assert "USER 10001:10001" in dockerfile


def test_compose_trusts_only_nginx(compose: dict[str, Any]) -> None:
    app_env = compose["services"]["app"]["environment"]
    nginx_address = compose["services"]["nginx"]["networks"]["edge"]["ipv4_address"]
    assert nginx_address == "${EDGE_NGINX_ADDRESS:-172.30.53.254}"
    # Not the edge subnet: its gateway is where published-port traffic comes from.
    assert app_env["TRUSTED_PROXIES"] == f'["{nginx_address}"]'
    assert "edge" not in compose["services"]["postgres"]["networks"]


def test_compose_asks_for_the_mail_server_and_shares_uploads(
    rendered: dict[str, Path], compose: dict[str, Any]
) -> None:
    # Production refuses to start without a mail server: the README's list of what .env
    # needs for `make up` names it, and .env reaches the app through env_file.
    readme = (rendered["compose"] / "README.md").read_text()
    block = readme.split("<!-- compose-env -->", 1)[1].split("<!-- /compose-env -->", 1)[0]
    assert re.search(r"^SMTP_HOST=", block, re.M), block
    app = compose["services"]["app"]
    assert app["env_file"] == ".env"
    assert app["read_only"] is True
    assert app["environment"]["STORAGE_LOCAL_ROOT"] == "/app/var/uploads"
    assert "uploads:/app/var/uploads" in app["volumes"]
    assert "uploads" in compose["volumes"]


def test_compose_publishes_nginx_http_and_https(compose: dict[str, Any]) -> None:
    ports = compose["services"]["nginx"]["ports"]
    assert ports == [
        "${PUBLISH_ADDRESS:-0.0.0.0}:${HTTP_PORT:-80}:80",
        "${PUBLISH_ADDRESS:-0.0.0.0}:${HTTPS_PORT:-443}:443",
    ]


def test_compose_override_is_for_development(rendered: dict[str, Path]) -> None:
    override = yaml.safe_load((rendered["compose"] / "docker-compose.override.yml").read_text())
    # Plain HTTP in development: no certificate needed.
    assert override["services"]["nginx"]["volumes"] == [
        "./deploy/nginx/http.conf:/etc/nginx/site.conf:ro"
    ]
    app = override["services"]["app"]
    assert "--reload" in app["command"]
    assert "--no-proxy-headers" in app["command"]
    assert app["deploy"]["replicas"] == 1
    assert any(volume.startswith("./app:") for volume in app["volumes"])
    assert all(port.startswith("127.0.0.1:") for port in app["ports"])


def test_up_dev_publishes_on_loopback_from_networks_with_a_way_in(
    rendered: dict[str, Path], template_repo: Path, tmp_path: Path
) -> None:
    """`make up-dev`'s stack as Compose merges it: every published port is on 127.0.0.1,
    and each service that publishes one is on a network that is not `internal` (Docker
    publishes no port of a container whose networks all are: the database and Redis were
    unreachable from the host)."""
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
    ):
        pytest.skip("no Docker Compose v2 CLI here to merge the files as `make up-dev` does")
    s3 = {"deployment": "compose", "storage_backend": "s3"}
    for answers in ({}, s3):
        project = (
            render(template_repo, tmp_path / "s3", answers) if answers else rendered["compose"]
        )
        merged = subprocess.run(
            [docker, "compose", "--profile", "s3", "config", "--format", "json"],
            cwd=project, capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        config = json.loads(merged.stdout)
        internal = {name for name, network in config["networks"].items() if network.get("internal")}
        published = {
            name: service
            for name, service in config["services"].items()
            if service.get("ports") and name != "nginx"
        }
        expected = {"app", "postgres", "redis"} | ({"s3"} if answers else set())
        assert set(published) == expected, sorted(published)
        for name, service in published.items():
            assert {port["host_ip"] for port in service["ports"]} == {"127.0.0.1"}, name
            assert set(service["networks"]) - internal, f"{name}: only on internal networks"


# Kubernetes --------------------------------------------------------------------------


def _documents(project: Path) -> dict[str, dict[str, Any]]:
    """Every manifest under deploy/kubernetes, by kind (kustomization files by folder;
    the optional PgBouncer's as `pgbouncer:` and their kind)."""
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted((project / "deploy/kubernetes").rglob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        if path.stem == "kustomization":
            key = f"kustomization:{path.parent.name}"
        elif path.parent.name == "pgbouncer":
            key = f"pgbouncer:{document['kind']}"
        else:
            key = document["kind"]
        # A second document of a kind (the worker's and scheduler's Deployments) by its file.
        documents[f"{key}:{path.stem}" if key in documents else key] = document
    return documents


def _gateway_api_documents(documents: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The Gateway API manifests: custom resources, outside the Kubernetes API schemas."""
    return {
        kind: document
        for kind, document in documents.items()
        if str(document.get("apiVersion", "")).startswith("gateway.networking.k8s.io/")
    }


@pytest.fixture(scope="module")
def manifests(rendered: dict[str, Path]) -> dict[str, dict[str, Any]]:
    return _documents(rendered["kubernetes"])


def test_kubernetes_manifests_match_the_api_schemas(manifests: dict[str, dict[str, Any]]) -> None:
    checked = []
    for kind, document in manifests.items():
        if kind.startswith("kustomization:") or kind in _gateway_api_documents(manifests):
            continue
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        checked.append(kind)
    assert sorted(checked) == sorted(
        [
            "ConfigMap",
            "Secret",
            "Deployment",
            "Deployment:scheduler",
            "Deployment:worker",
            "Service",
            "Ingress",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "PersistentVolumeClaim",
            "Job",
            "pgbouncer:Deployment",
            "pgbouncer:Service",
            "pgbouncer:Secret",
        ]
    )
    assert list(_gateway_api_documents(manifests)) == ["HTTPRoute"]


def test_httproute_routes_the_api_over_https_to_the_service(
    manifests: dict[str, dict[str, Any]],
) -> None:
    """The Gateway API's v1 HTTPRoute fields, checked by hand (its schema is a CRD's)."""
    route = manifests["HTTPRoute"]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert set(route["spec"]) == {"parentRefs", "hostnames", "rules"}
    (parent,) = route["spec"]["parentRefs"]
    assert set(parent) <= {"group", "kind", "namespace", "name", "sectionName", "port"}
    assert parent["sectionName"] == "https", "attached to the Gateway's TLS listener"
    (rule,) = route["spec"]["rules"]
    assert {(m["path"]["type"], m["path"]["value"]) for m in rule["matches"]} == {
        ("PathPrefix", "/api"),
        ("PathPrefix", "/docs"),
    }, "/health and /metrics stay inside the cluster"
    (headers,) = rule["filters"]
    assert headers["type"] == "ResponseHeaderModifier"
    assert headers["responseHeaderModifier"]["set"] == [
        {"name": "Strict-Transport-Security", "value": "max-age=63072000"}
    ]
    service = manifests["Service"]
    (backend,) = rule["backendRefs"]
    assert backend == {
        "name": service["metadata"]["name"],
        "port": service["spec"]["ports"][0]["port"],
    }
    app = manifests["kustomization:app"]["resources"]
    assert "httproute.yaml" in app
    assert "ingress.yaml" not in app, "the Ingress is the alternative, not applied as well"


def test_uploads_are_shared_by_every_pod(manifests: dict[str, dict[str, Any]]) -> None:
    claim = manifests["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["uploads"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    mounts = {m["name"]: m["mountPath"] for m in _container(pod)["volumeMounts"]}
    assert mounts["uploads"] == manifests["ConfigMap"]["data"]["STORAGE_LOCAL_ROOT"]
    assert "uploads-pvc.yaml" in manifests["kustomization:app"]["resources"]


def test_kustomizations_name_existing_files(rendered: dict[str, Path]) -> None:
    root = rendered["kubernetes"] / "deploy/kubernetes"
    for folder in ("config", "app", "migrate", "pgbouncer"):
        kustomization = yaml.safe_load((root / folder / "kustomization.yaml").read_text())
        generated = [
            file
            for generator in kustomization.get("configMapGenerator", [])
            for file in generator["files"]
        ]
        for entry in [
            *kustomization.get("resources", []),
            *kustomization.get("components", []),
            *generated,
        ]:
            assert (root / folder / entry).exists(), f"{folder}: {entry} missing"
    config = yaml.safe_load((root / "config/kustomization.yaml").read_text())
    assert "secret.example.yaml" not in config["resources"], "the placeholder is never applied"


def _container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_spec["containers"]
    assert len(containers) == 1
    return containers[0]


def _assert_locked_down(pod_spec: dict[str, Any], where: str) -> None:
    assert pod_spec["securityContext"]["runAsNonRoot"] is True, where
    assert pod_spec["securityContext"]["runAsUser"] == 10001, where
    assert pod_spec["automountServiceAccountToken"] is False, where
    container = _container(pod_spec)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True, where
    assert security["allowPrivilegeEscalation"] is False, where
    assert security["capabilities"]["drop"] == ["ALL"], where
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{where}: {bound}"


def test_deployment_probes_security_and_resources(manifests: dict[str, dict[str, Any]]) -> None:
    deployment = manifests["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    _assert_locked_down(pod, "Deployment")
    container = _container(pod)
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
    assert pod["terminationGracePeriodSeconds"] > 25 + 5, "above preStop plus graceful shutdown"
    assert {"mountPath": "/tmp", "name": "tmp"} in container["volumeMounts"]
    env_from = {next(iter(source.values()))["name"] for source in container["envFrom"]}
    assert env_from == {
        manifests["ConfigMap"]["metadata"]["name"],
        manifests["Secret"]["metadata"]["name"],
    }


def test_workers_are_locked_down_with_a_heartbeat_probe_and_a_graceful_stop(
    manifests: dict[str, dict[str, Any]],
) -> None:
    app = _container(manifests["Deployment"]["spec"]["template"]["spec"])
    for name in ("worker", "scheduler"):
        deployment = manifests[f"Deployment:{name}"]
        pod = deployment["spec"]["template"]["spec"]
        _assert_locked_down(pod, f"Deployment:{name}")
        container = _container(pod)
        assert container["image"] == app["image"], name
        assert container["envFrom"] == app["envFrom"], name
        assert container["command"][:2] == ["taskiq", name], name
        assert "readinessProbe" not in container, f"{name}: nothing routes to it"
    worker = manifests["Deployment:worker"]["spec"]["template"]["spec"]
    container = _container(worker)
    assert container["livenessProbe"]["exec"]["command"] == ["python", "-m", "app.worker.health"]
    scheduler = _container(manifests["Deployment:scheduler"]["spec"]["template"]["spec"])
    assert scheduler["livenessProbe"]["exec"]["command"] == [
        "python",
        "-m",
        "app.worker.health",
        "scheduler",
    ]
    # The heartbeat is written on a read-only root: /tmp must be a volume.
    for pod in (worker, manifests["Deployment:scheduler"]["spec"]["template"]["spec"]):
        mounts = {mount["mountPath"] for mount in _container(pod)["volumeMounts"]}
        assert "/tmp" in mounts
    assert "--wait-tasks-timeout=25" in container["command"]
    assert worker["terminationGracePeriodSeconds"] > 25, "above the wait for jobs in hand"
    assert manifests["Deployment:scheduler"]["spec"]["replicas"] == 1


def test_service_ingress_and_autoscaler_point_at_the_deployment(
    manifests: dict[str, dict[str, Any]],
) -> None:
    deployment = manifests["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = manifests["Service"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    backends = [
        path["backend"]["service"]["name"]
        for rule in manifests["Ingress"]["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert set(backends) == {service["metadata"]["name"]}
    exposed = {
        path["path"]
        for rule in manifests["Ingress"]["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert exposed == {"/api", "/docs"}, "/health and /metrics stay inside the cluster"
    hpa = manifests["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    assert manifests["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= (
        pod_labels.items()
    )


def test_migration_job_runs_alembic_with_the_app_settings(
    manifests: dict[str, dict[str, Any]],
) -> None:
    job = manifests["Job"]
    pod = job["spec"]["template"]["spec"]
    _assert_locked_down(pod, "Job")
    container = _container(pod)
    # args, not command: the image's entrypoint checks the settings first (app/start.py).
    assert container["args"] == MIGRATE_AND_SEED
    assert "command" not in container
    assert pod["restartPolicy"] == "Never"
    app_container = _container(manifests["Deployment"]["spec"]["template"]["spec"])
    assert container["envFrom"] == app_container["envFrom"]
    assert container["image"] == app_container["image"]
    images = manifests["kustomization:config"]["images"]
    assert [image["name"] for image in images] == [container["image"]]


def test_secret_and_configmap_hold_no_secret_values(manifests: dict[str, dict[str, Any]]) -> None:
    for key, value in manifests["Secret"]["stringData"].items():
        assert value == "" or "REPLACE_ME" in value, f"Secret {key} looks like a real value"
    config = manifests["ConfigMap"]["data"]
    assert not {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "SENTRY_DSN"} & set(config)
    assert config["ENVIRONMENT"] == "production"
    assert config["WEB_CONCURRENCY"] == "1"
    # Production refuses to start without a mail server: the user is asked for one.
    assert "REPLACE_ME" in config["SMTP_HOST"]
    assert {"SMTP_USERNAME", "SMTP_PASSWORD"} <= set(manifests["Secret"]["stringData"])


def test_pgbouncer_is_an_option_locked_down_like_the_app(
    rendered: dict[str, Path], manifests: dict[str, dict[str, Any]]
) -> None:
    root = rendered["kubernetes"] / "deploy/kubernetes/pgbouncer"
    deployment = manifests["pgbouncer:Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    _assert_locked_down(pod, "PgBouncer")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = manifests["pgbouncer:Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["port"] == 6432
    assert labels["app.kubernetes.io/component"] == "pgbouncer"
    app_labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert not manifests["Service"]["spec"]["selector"].items() <= labels.items()
    assert not service["spec"]["selector"].items() <= app_labels.items()
    mounted = {volume["name"]: volume for volume in pod["volumes"]}
    secret = manifests["pgbouncer:Secret"]
    assert _container(pod)["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    assert set(secret["stringData"]) == {"DATABASE_USER", "DATABASE_PASSWORD"}
    assert all("REPLACE_ME" in value for value in secret["stringData"].values())
    assert "emptyDir" in mounted["tmp"], "where the entrypoint writes the login file"
    kustomization = manifests["kustomization:pgbouncer"]
    assert "secret.example.yaml" not in kustomization["resources"], "never applied"
    assert mounted["config"]["configMap"]["name"] == kustomization["configMapGenerator"][0]["name"]
    assert "pool_mode = transaction" in (root / "pgbouncer.ini").read_text().splitlines()
    assert manifests["ConfigMap"]["data"]["DATABASE_TRANSACTION_POOLING"] == "false"
    assert manifests["Secret"]["stringData"]["DATABASE_MIGRATION_URL"] == ""
