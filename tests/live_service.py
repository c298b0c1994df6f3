"""A rendered service served for real: its own database, migrations, an administrator, and
uvicorn on 127.0.0.1, for tests that talk to it only over HTTP (tests/test_clients.py);
for the S3 storage variant, a real S3-compatible server beside it (moto in server mode,
as the generated suite's own S3 tests use)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

BIN_DIR = Path(sys.executable).parent
ADMIN_EMAIL = "ops@example.com"
ADMIN_PASSWORD = "Tulip-Orbit-Quarry-2024"


@dataclass
class LiveService:
    base_url: str
    project: Path
    env: dict[str, str]

    @property
    def openapi_url(self) -> str:
        return f"{self.base_url}/api/v1/openapi.json"


@contextlib.contextmanager
def s3_bucket() -> Iterator[dict[str, str]]:
    """A bucket on an S3-compatible HTTP server (moto) on 127.0.0.1; the STORAGE_S3_*
    settings that point a service at it. The presigned URLs the service hands out are
    the server's own, so clients download over real HTTP."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    settings = {
        "STORAGE_S3_BUCKET": "contract-uploads",
        "STORAGE_S3_REGION": "us-east-1",
        "STORAGE_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "STORAGE_S3_ACCESS_KEY_ID": "testing",
        "STORAGE_S3_SECRET_ACCESS_KEY": "testing",
    }
    try:
        boto3.session.Session().client(
            "s3",
            region_name=settings["STORAGE_S3_REGION"],
            endpoint_url=settings["STORAGE_S3_ENDPOINT_URL"],
            aws_access_key_id=settings["STORAGE_S3_ACCESS_KEY_ID"],
            aws_secret_access_key=settings["STORAGE_S3_SECRET_ACCESS_KEY"],
        ).create_bucket(Bucket=settings["STORAGE_S3_BUCKET"])
        yield settings
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _database(base_url: str | None, project: Path) -> Iterator[str]:
    """A fresh PostgreSQL database when TEST_DATABASE_URL is set, else an SQLite file."""
    if not base_url:
        yield f"sqlite+aiosqlite:///{project / 'contract.db'}"
        return
    name = f"contract_{uuid.uuid4().hex[:12]}"
    admin_url = base_url.replace("+asyncpg", "").rsplit("/", 1)[0] + "/postgres"
    subprocess.run(["psql", admin_url, "-qc", f"CREATE DATABASE {name}"], check=True)
    try:
        yield base_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        subprocess.run(
            ["psql", admin_url, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
            check=False,
        )


@contextlib.contextmanager
def serve(project: Path, **settings: str) -> Iterator[LiveService]:
    """Migrate, seed, create the administrator and serve `project` until the block ends.

    Rate limits are on, as in production, the general ones raised for the journeys and the
    fuzzer (many requests from one address); a route's own limit (the upload's) stays.
    Email goes to the log. PostgreSQL and Redis come from TEST_DATABASE_URL/TEST_REDIS_URL.
    """
    with _database(os.environ.get("TEST_DATABASE_URL"), project) as database_url:
        env = {
            **os.environ,
            "PYTHONPATH": str(project),
            "ENVIRONMENT": "development",
            "DATABASE_URL": database_url,
            "REDIS_URL": os.environ.get("TEST_REDIS_URL", ""),
            "CACHE_KEY_PREFIX": f"contract-{uuid.uuid4().hex[:8]}:",
            "RATE_LIMIT_ENABLED": "true",
            "RATE_LIMIT_PER_USER": "1000000/minute",
            "RATE_LIMIT_PER_IP": "1000000/minute",
            "LOGIN_RATE_LIMIT_PER_IP": "10000/minute",
            "LOGIN_RATE_LIMIT_PER_ACCOUNT": "10000/minute",
            "EMAIL_LINK_RATE_LIMIT": "10000/minute",
            "BCRYPT_ROUNDS": "4",
            "SMTP_HOST": "",
            "STORAGE_LOCAL_ROOT": str(project / "var" / "uploads"),
            "LOG_LEVEL": "WARNING",
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "COOKIE_SECURE": "false",
            **settings,
        }
        env.pop("VIRTUAL_ENV", None)
        for command in (
            [str(BIN_DIR / "alembic"), "upgrade", "head"],
            [str(BIN_DIR / "python"), "-m", "app.cli", "seed"],
            [str(BIN_DIR / "python"), "-m", "app.cli", "create-admin", "--email", ADMIN_EMAIL],
        ):
            result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
            if result.returncode:
                raise RuntimeError(f"{command} failed:\n{result.stdout}{result.stderr}")
        port = _free_port()
        log = (project / "uvicorn.log").open("w")
        server = subprocess.Popen(
            [
                str(BIN_DIR / "uvicorn"),
                "--factory",
                "app.main:create_app",
                "--no-proxy-headers",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base_url}/health/ready", timeout=2).status_code == 200:
                        break
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the service did not start:\n{(project / 'uvicorn.log').read_text()}"
                    )
                time.sleep(0.2)
            yield LiveService(base_url, project, env)
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
