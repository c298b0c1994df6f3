"""The compose stack's `pgbouncer` profile, for real: the rendered default service's
docker-compose.yml brought up with Compose v2 (the README's `make up`) with what the
README asks for in `.env`, its `pgbouncer` block included, and nginx on plain HTTP
(`NGINX_SITE=http`: TLS is tests/test_real_stack.py's concern).

Checks: PgBouncer (deploy/pgbouncer, Debian's package) comes up healthy as uid 10001 on a
read-only root; migrations ran past it (the `migrate` service connects to PostgreSQL
itself); register, login, /users/me and article writes through nginx succeed; every
connection PostgreSQL has for the app's database comes from PgBouncer's address, fewer
than the replicas' pools hold. The stack, its volumes and images are removed whatever
happens. Skipped, with the reason, where no container engine can be had.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests import containers
from tests.conftest import suite_runs
from tests.containers import Compose
from tests.load import API, register_and_login
from tests.rendering import SuiteRun, render

VARIANT = "default (compose, pgbouncer profile)"
# The settings of tests/test_real_stack.py's .env, but for a mail server: none runs here
# (the welcome mails fail in the background, and are logged).
SETTINGS = {
    "SMTP_HOST": "mail",
    "SMTP_PORT": "1025",
    "SMTP_USERNAME": "",
    "SMTP_PASSWORD": "",
    "SMTP_SECURITY": "starttls",
    "EMAIL_FROM": "noreply@example.com",
    "PUBLIC_URL": "https://localhost",
}


def test_the_stack_serves_through_pgbouncer(
    template_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    docker = containers.engine()
    run_id = uuid.uuid4().hex[:8]
    work = tmp_path_factory.mktemp("pgbouncer-stack")
    name = f"pgb-{run_id}"
    project = render(template_repo, work / "svc", {"project_slug": name})
    database = name.replace("-", "_")
    image = f"{name}:latest"

    bases = containers.dockerfile_bases(project / "Dockerfile", {})
    services = containers.compose_images(project / "docker-compose.yml")
    containers.stand_ins(services)
    pooler_bases = containers.dockerfile_bases(project / "deploy/pgbouncer/Dockerfile", {})
    missing = [
        tag
        for tag in {*bases, *pooler_bases, *services.values()}
        if not containers.image_exists(docker, tag)
    ]
    assert not missing, f"no stand-in was built for {missing} (scripts/stand-in-images)"
    containers.build_image(docker, project, image)

    http_port = containers.free_port()
    readme = project / "README.md"
    pooled = containers.readme_env_block(readme, "compose-env-pgbouncer")
    assert pooled["COMPOSE_PROFILES"] == "pgbouncer"
    settings = {**SETTINGS, "PUBLIC_HOST": f"127.0.0.1:{http_port}", "NGINX_SITE": "http"}
    assert set(SETTINGS) | {"PUBLIC_HOST"} == set(containers.readme_env_block(readme))
    with (project / ".env").open("a") as env_file:
        env_file.write("".join(f"{key}={value}\n" for key, value in (settings | pooled).items()))

    make = shutil.which("make")
    assert make, "make is needed: the test runs the README's `make up`"
    subnet = containers.edge_subnet(docker)
    compose = Compose(
        docker,
        project,
        name=name,
        files=[project / "docker-compose.yml"],
        env={
            "COMPOSE_PROJECT_NAME": name,
            "PUBLISH_ADDRESS": "127.0.0.1",
            "HTTP_PORT": str(http_port),
            "HTTPS_PORT": str(containers.free_port()),
            "EDGE_SUBNET": str(subnet),
            "EDGE_NGINX_ADDRESS": str(subnet[254]),
            "WEB_CONCURRENCY": "1",
            "PATH": f"{Path(docker).parent}:{os.environ.get('PATH', '')}",
        },
    )
    built = {containers.image_id(docker, image)}
    try:
        started = time.perf_counter()
        up = subprocess.run(
            [make, "up"],
            cwd=project,
            env={**os.environ, **compose.env},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        healthy = time.perf_counter() - started
        labelled = f"label=com.docker.compose.project={name}"
        built.update(containers._run([docker, "images", "-q", "--filter", labelled]).stdout.split())
        built.add(containers.image_id(docker, f"{name}-pgbouncer:latest"))
        assert up.returncode == 0, f"make up failed:\n{up.stderr[-6000:]}\n{compose.diagnostics()}"
        suite_runs.append(SuiteRun(VARIANT, "make up (pgbouncer profile)", True, healthy))

        (pooler,) = compose.containers("pgbouncer")
        pooler_state = compose.inspect(pooler)
        assert pooler_state["State"]["Health"]["Status"] == "healthy"
        assert pooler_state["Config"]["User"] == "10001:10001"
        assert pooler_state["HostConfig"]["ReadonlyRootfs"] is True
        app = compose.containers("app")
        app_env = dict(entry.split("=", 1) for entry in compose.inspect(app[0])["Config"]["Env"])
        assert f"@pgbouncer:6432/{database}" in app_env["DATABASE_URL"]
        assert app_env["DATABASE_TRANSACTION_POOLING"] == "true"

        base = f"http://127.0.0.1:{http_port}"
        with httpx.Client(timeout=30) as client:
            headers = register_and_login(client, base, "pgbouncer-stack")
            statuses = [client.get(f"{base}{API}/users/me", headers=headers).status_code]
            for number in range(20):
                created = client.post(
                    f"{base}{API}/articles",
                    headers=headers,
                    json={"title": f"through PgBouncer {number}", "content": "x"},
                )
                statuses.append(created.status_code)
                statuses.append(client.get(f"{base}{API}/articles", headers=headers).status_code)

        (postgres,) = compose.containers("postgres")
        query = (
            "SELECT coalesce(host(client_addr), 'local') FROM pg_stat_activity"
            f" WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        )
        sessions = compose.exec(postgres, "psql", "-U", database, "-d", database, "-Atc", query)
        assert sessions.returncode == 0, sessions.stderr
        clients = sessions.stdout.split()
        pooler_addresses = {
            network["IPAddress"] for network in pooler_state["NetworkSettings"]["Networks"].values()
        }
    finally:
        compose.down()
        containers._run([docker, "image", "rm", "--force", image, *(built - {""})])

    print(f"\npgbouncer profile: healthy after {healthy:.1f} s; PostgreSQL sessions: {clients}")
    assert statuses == [200] + [201, 200] * 20
    assert clients, "no session of the app's database: did the requests reach PostgreSQL?"
    assert set(clients) <= pooler_addresses, "a connection bypassed PgBouncer"
    # Three replicas' pools (10 + 10 each) could hold 60: PgBouncer needed a few.
    assert len(clients) <= 20
