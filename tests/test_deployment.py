"""Deployment files of each `deployment` answer: only its files render, nginx accepts the
config (`nginx -t`), and the compose file and Kubernetes manifests have what production
needs (probes, non-root, resources, replicas, migration ordering, no secret values).
Kubernetes manifests are also validated against the API schemas (kubernetes-validate,
offline). No container engine is needed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests import matrix
from tests.deploy_support import Nginx, find_or_install_nginx, nginx_version, replace_once
from tests.rendering import render

DEPLOYMENTS = matrix.toggles()["deployment"]
# What the compose `migrate` service and the Kubernetes migration Job run.
MIGRATE_AND_SEED = ["sh", "-c", "alembic upgrade head && python -m app.cli seed"]
KUBERNETES_VERSION = "1.30"  # the oldest Kubernetes release still commonly supported

COMPOSE_FILES = ["docker-compose.yml", "docker-compose.override.yml", "deploy/nginx/nginx.conf"]
KUBERNETES_FILES = [
    "deploy/kubernetes/README.md",
    "deploy/kubernetes/config/kustomization.yaml",
    "deploy/kubernetes/config/configmap.yaml",
    "deploy/kubernetes/config/secret.example.yaml",
    "deploy/kubernetes/app/kustomization.yaml",
    "deploy/kubernetes/app/deployment.yaml",
    "deploy/kubernetes/app/service.yaml",
    "deploy/kubernetes/app/ingress.yaml",
    "deploy/kubernetes/app/hpa.yaml",
    "deploy/kubernetes/app/pdb.yaml",
    "deploy/kubernetes/migrate/kustomization.yaml",
    "deploy/kubernetes/migrate/job.yaml",
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
    assert "uv sync --no-dev" in dockerfile
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


def test_nginx_config_passes_nginx_t(rendered: dict[str, Path], nginx: Nginx) -> None:
    shipped = (rendered["compose"] / "deploy/nginx/nginx.conf").read_text()
    # "app" resolves only inside the compose network: name a local address instead.
    config = nginx.prefix / "nginx.conf"
    config.write_text(replace_once(shipped, "server app:8000", "server 127.0.0.1:8000"))
    result = nginx.check(config)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_tls_block_is_valid_once_uncommented(rendered: dict[str, Path], nginx: Nginx) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make a test certificate for the TLS server block")
    certs = nginx.prefix / "certs"
    certs.mkdir(exist_ok=True)
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
            str(certs / "privkey.pem"),
            "-out",
            str(certs / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    shipped = (rendered["compose"] / "deploy/nginx/nginx.conf").read_text()
    tls = re.sub(r"^    # ?", "    ", shipped.split("# server {", 1)[1], flags=re.MULTILINE)
    tls = "server {" + tls.replace("# ... the proxy settings of the port-80 location ...", "")
    tls = tls.replace("/etc/nginx/certs", str(certs))
    if nginx_version(nginx.binary) < (1, 25, 1):  # `http2 on;` is newer than this nginx
        tls = replace_once(tls, "http2 on;", "")
    config = replace_once(shipped, "server app:8000", "server 127.0.0.1:8000")
    config = config[: config.index("    # HTTPS:")] + "    " + tls
    path = nginx.prefix / "nginx-tls.conf"
    path.write_text(config)
    result = nginx.check(path)
    assert result.returncode == 0, f"{result.stderr}\n{config}"


def test_nginx_passes_the_client_to_the_app(rendered: dict[str, Path]) -> None:
    config = (rendered["compose"] / "deploy/nginx/nginx.conf").read_text()
    for header in (
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Request-ID $edge_request_id;",
        "proxy_set_header Host $host;",
    ):
        assert header in config, header
    assert "proxy_next_upstream error timeout" in config
    assert "non_idempotent" not in config, "a POST that reached a replica must not be resent"
    assert re.search(r"location = /metrics \{\s*return 404;", config), "/metrics is internal"
    assert "# server {\n    #     listen 443 ssl;" in config, "commented TLS server block"


# Docker Compose ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose(rendered: dict[str, Path]) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (rendered["compose"] / "docker-compose.yml").read_text()
    )
    return loaded


def test_compose_runs_replicas_behind_nginx(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"nginx", "app", "migrate", "postgres", "redis"}
    assert services["app"]["deploy"]["replicas"] >= 2
    assert "ports" not in services["app"], "replicas are reached through nginx only"
    assert "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    assert services["nginx"]["depends_on"]["app"]["condition"] == "service_healthy"
    assert int(services["app"]["stop_grace_period"].rstrip("s")) > 25, "above uvicorn's 25 s"


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
    for service_name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|DSN", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), (service_name, key)
            if key == "DATABASE_URL":
                assert ":${POSTGRES_PASSWORD:?" in value, "the password comes from .env"


def test_compose_trusts_only_the_edge_network(compose: dict[str, Any]) -> None:
    app_env = compose["services"]["app"]["environment"]
    subnet = compose["networks"]["edge"]["ipam"]["config"][0]["subnet"]
    assert app_env["TRUSTED_PROXIES"] == f'["{subnet}"]'
    assert compose["services"]["nginx"]["networks"] == ["edge"]
    assert "edge" not in compose["services"]["postgres"]["networks"]


def test_compose_override_is_for_development(rendered: dict[str, Path]) -> None:
    override = yaml.safe_load((rendered["compose"] / "docker-compose.override.yml").read_text())
    app = override["services"]["app"]
    assert "--reload" in app["command"]
    assert "--no-proxy-headers" in app["command"]
    assert app["deploy"]["replicas"] == 1
    assert any(volume.startswith("./app:") for volume in app["volumes"])
    assert all(port.startswith("127.0.0.1:") for port in app["ports"])


# Kubernetes --------------------------------------------------------------------------


def _documents(project: Path) -> dict[str, dict[str, Any]]:
    """Every manifest under deploy/kubernetes, by kind (kustomization files by folder)."""
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted((project / "deploy/kubernetes").rglob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        key = f"kustomization:{path.parent.name}" if path.stem == "kustomization" else None
        documents[key or document["kind"]] = document
    return documents


@pytest.fixture(scope="module")
def manifests(rendered: dict[str, Path]) -> dict[str, dict[str, Any]]:
    return _documents(rendered["kubernetes"])


def test_kubernetes_manifests_match_the_api_schemas(manifests: dict[str, dict[str, Any]]) -> None:
    checked = []
    for kind, document in manifests.items():
        if kind.startswith("kustomization:"):
            continue
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        checked.append(kind)
    assert sorted(checked) == sorted(
        [
            "ConfigMap",
            "Secret",
            "Deployment",
            "Service",
            "Ingress",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "Job",
        ]
    )


def test_kustomizations_name_existing_files(rendered: dict[str, Path]) -> None:
    root = rendered["kubernetes"] / "deploy/kubernetes"
    for folder in ("config", "app", "migrate"):
        kustomization = yaml.safe_load((root / folder / "kustomization.yaml").read_text())
        for entry in kustomization.get("resources", []) + kustomization.get("components", []):
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
    assert container["command"] == MIGRATE_AND_SEED
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
