"""The OpenAPI document is the contract (issue #22), checked from a consumer's side.

For each distinct document (storage x token transport; the email provider does not change
it), Redocly CLI lints it with the service's own `redocly.yaml`, as `make openapi-lint`
does. Then the variant is served for real, once for all of its tests (uvicorn on
127.0.0.1; PostgreSQL and Redis when TEST_DATABASE_URL / TEST_REDIS_URL are set; for S3,
a bucket on a real S3-compatible server, moto): a typed Python client
(openapi-python-client) and a typed TypeScript client (@hey-api/openapi-ts, compiled by
`tsc --strict`) are generated once from the document it serves, and both run the consumer
journey in strict mode (tests/client_journeys); email addresses are held to the document
both ways; and schemathesis runs every check against the server as an administrator:
zero failures, status-code conformance included. The fuzz for server errors and hostile
input is tests/test_fuzz.py's; this module is about conformance.

The npm tools are pinned in tests/client_journeys/package-lock.json and installed once
into ~/.cache (keyed by the lock file), with `npm ci`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from tests.live_service import ADMIN_EMAIL, ADMIN_PASSWORD, LiveService, s3_bucket, serve
from tests.rendering import render

ROOT = Path(__file__).resolve().parents[1]
JOURNEYS = ROOT / "tests" / "client_journeys"
BIN_DIR = Path(sys.executable).parent
API = "/api/v1"
# Every document the template can produce: the email provider changes no route.
DOCUMENTS = {
    "local-body": {"storage_backend": "local", "token_transport": "body"},
    "local-cookie": {"storage_backend": "local", "token_transport": "cookie"},
    "s3-body": {"storage_backend": "s3", "token_transport": "body"},
    "s3-cookie": {"storage_backend": "s3", "token_transport": "cookie"},
}

pytestmark = pytest.mark.slow


def _timed(label: str, started: float) -> None:
    print(f"{label}: {time.perf_counter() - started:.1f} s", flush=True)


def _run(
    command: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600
) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output}"
    return output


@pytest.fixture(scope="session")
def npm_tools() -> Path:
    """node_modules with the pinned generator, compiler and linter (installed once)."""
    if shutil.which("npm") is None:
        pytest.fail("npm is needed for the TypeScript client and the OpenAPI lint")
    lock = (JOURNEYS / "package-lock.json").read_bytes()
    cache = (
        Path.home() / ".cache" / "fastapi-template-tests" / hashlib.sha256(lock).hexdigest()[:16]
    )
    if not (cache / "node_modules" / ".bin" / "openapi-ts").exists():
        started = time.perf_counter()
        cache.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(JOURNEYS / name, cache / name)
        _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=cache)
        _timed("npm ci", started)
    return cache / "node_modules"


@pytest.fixture(scope="module", params=list(DOCUMENTS))
def rendered(
    request: pytest.FixtureRequest, template_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    name = request.param
    project = render(
        template_repo, tmp_path_factory.mktemp(f"clients-{name}") / "svc", DOCUMENTS[name]
    )
    return name, project


@dataclass
class Description:
    """The document as `make openapi` writes it, and the operations that use the storage."""

    document: dict[str, Any]
    storage_operations: list[str]


@pytest.fixture(scope="module")
def described(rendered: tuple[str, Path]) -> Description:
    _, project = rendered
    env = {**os.environ, "PYTHONPATH": str(project), "ENVIRONMENT": "development"}
    env.pop("VIRTUAL_ENV", None)
    script = str(JOURNEYS / "describe_service.py")
    output = json.loads(_run([str(BIN_DIR / "python"), script], cwd=project, env=env))
    return Description(output["document"], output["storage_operations"])


def _write_document(directory: Path, document: dict[str, Any]) -> Path:
    path = directory / "openapi.json"
    path.write_text(json.dumps(document, indent=2))
    return path


def test_every_document_lints(
    rendered: tuple[str, Path], described: Description, npm_tools: Path
) -> None:
    """`make openapi-lint`: Redocly CLI, pinned, with the service's `redocly.yaml` (the
    strict recommended set): no error, no warning."""
    name, project = rendered
    document = _write_document(project, described.document)
    started = time.perf_counter()
    _run(
        [str(npm_tools / ".bin" / "redocly"), "lint", str(document), "--config", "redocly.yaml"],
        cwd=project,
    )
    _timed(f"{name}: redocly lint", started)


def test_make_openapi_lint_runs_the_pinned_redocly(rendered: tuple[str, Path]) -> None:
    """The service's `make openapi-lint` runs the Redocly CLI these tests lint with."""
    _, project = rendered
    pinned = json.loads((JOURNEYS / "package.json").read_text())["devDependencies"]
    assert f"@redocly/cli@{pinned['@redocly/cli']} lint" in (project / "Makefile").read_text()


@pytest.fixture(scope="module")
def live(rendered: tuple[str, Path]) -> Iterator[tuple[str, LiveService]]:
    """The variant served, once for every test of it (journeys, addresses, schemathesis);
    the S3 variants with a bucket on a real S3-compatible server."""
    name, project = rendered
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        storage = s3_bucket() if DOCUMENTS[name]["storage_backend"] == "s3" else None
        settings = stack.enter_context(storage) if storage else {}
        service = stack.enter_context(serve(project, **settings))
        _timed(f"{name}: migrate and serve", started)
        yield name, service


@dataclass
class Clients:
    """Both clients, generated once per variant from the document the server serves."""

    python: Path  # holds the `service_client` package
    python_output: str
    typescript: Path  # holds `client/`, to compile beside a journey


@pytest.fixture(scope="module")
def clients(
    live: tuple[str, LiveService], npm_tools: Path, tmp_path_factory: pytest.TempPathFactory
) -> Clients:
    name, service = live
    directory = tmp_path_factory.mktemp(f"clients-{name}-generated")
    document = _write_document(directory, httpx.get(service.openapi_url).json())
    started = time.perf_counter()
    (directory / "py").mkdir()
    output = generate_python_client(service.project, document, directory / "py")
    _timed(f"{name}: python client", started)
    started = time.perf_counter()
    (directory / "ts").mkdir()
    generate_typescript_client(npm_tools, document, directory / "ts")
    _timed(f"{name}: typescript client", started)
    return Clients(directory / "py", output, directory / "ts")


def generate_python_client(project: Path, document: Path, destination: Path) -> str:
    """openapi-python-client, as `make client` runs it; returns its output (warnings)."""
    config = destination.parent / "python-client.yaml"
    config.write_text((project / "openapi-python-client.yaml").read_text())
    env = {**os.environ, "PATH": f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}"}
    return _run(
        [
            str(BIN_DIR / "openapi-python-client"),
            "generate",
            "--path",
            str(document),
            "--output-path",
            str(destination / "service_client"),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        cwd=destination.parent,
        env=env,
    )


def generate_typescript_client(npm_tools: Path, document: Path, destination: Path) -> None:
    _run(
        [
            str(npm_tools / ".bin" / "openapi-ts"),
            "--input",
            str(document),
            "--output",
            str(destination / "client"),
            "--plugins",
            "@hey-api/client-fetch",
            "@hey-api/sdk",
            "@hey-api/typescript",
        ],
        cwd=destination,
    )


def test_python_client_journey(live: tuple[str, LiveService], clients: Clients) -> None:
    """openapi-python-client takes the document without a warning, and its client runs
    the journey with every response parsed into its documented model."""
    name, service = live
    assert "Warning" not in clients.python_output, clients.python_output
    started = time.perf_counter()
    storage, transport = name.split("-")
    output = _run(
        [
            str(BIN_DIR / "python"),
            str(JOURNEYS / "python_journey.py"),
            service.base_url,
            transport,
            storage,
        ],
        cwd=clients.python,
        env={**os.environ, "PYTHONPATH": str(clients.python)},
    )
    print(output)
    assert "python journey: 23 steps" in output
    _timed(f"{name}: python journey", started)


def test_typescript_client_journey(
    live: tuple[str, LiveService], clients: Clients, npm_tools: Path, tmp_path: Path
) -> None:
    """The TypeScript client and the journey compile with `tsc --strict`, and it runs."""
    name, service = live
    storage, transport = name.split("-")
    shutil.copytree(clients.typescript / "client", tmp_path / "client")
    shutil.copy(JOURNEYS / "journey.ts", tmp_path)
    shutil.copy(JOURNEYS / "tsconfig.json", tmp_path)
    shutil.copy(JOURNEYS / f"transport.{transport}.ts", tmp_path / "transport.ts")
    (tmp_path / "node_modules").symlink_to(npm_tools)
    started = time.perf_counter()
    _run([str(npm_tools / ".bin" / "tsc"), "-p", "."], cwd=tmp_path)
    _timed(f"{name}: tsc --strict", started)
    started = time.perf_counter()
    output = _run(["node", "dist/journey.js", service.base_url, transport, storage], cwd=tmp_path)
    print(output)
    assert "typescript journey: 23 steps" in output
    _timed(f"{name}: typescript journey", started)


# Email addresses of every kind the rules tell apart, and whether the service takes them.
# The special-use names are listed here, not read from email-validator: they are the
# claim under test (RFC 6761 test/invalid/localhost, RFC 6762 local, RFC 7686 onion,
# RFC 8375 home.arpa under arpa).
SPECIAL_USE = ("test", "invalid", "localhost", "local", "onion", "arpa")
EMAIL_KINDS: dict[str, bool] = {
    "ada@example.com": True,
    "Ada.Lovelace+list@Example.CO.UK": True,
    "o'hara!#$%&*/=?^_`{|}~-x@example.org": True,
    f"{'l' * 64}@example.com": True,
    f"{'l' * 65}@example.com": False,  # RFC 5321: 64 before the `@`
    "a@b.c": True,
    "a@x-1.example": True,  # `example` is for documentation, not a special-use name
    "a@test.example.com": True,  # a special-use label that is not the top level
    "üser@exämple.com": True,  # RFC 6531: Unicode before and after the `@`
    "a@xn--mller-kva.de": True,  # the domain's ASCII form: returned as a@müller.de
    "a@ab--c.com": False,  # RFC 5891: `??--` is for A-labels only
    f"a@{'d' * 63}.com": True,
    f"a@{'d' * 64}.com": False,  # RFC 1035: 63 octets a label
    f"{'l' * 64}@{'d' * 63}.{'d' * 63}.{'d' * 57}.com": True,  # 254 in all
    f"{'l' * 64}@{'d' * 63}.{'d' * 63}.{'d' * 58}.com": False,  # 255
    **{f"a@b.{name}": False for name in SPECIAL_USE},
    **{f"a@{name.upper()}": False for name in SPECIAL_USE},
    "a@home.arpa": False,
    "a@example": False,  # no dot: not deliverable on the Internet
    "a@example.123": False,  # no top-level domain is all digits
    "a@example.c0": False,  # nor ends with one
    '"a b"@example.com': False,  # quoted local part
    "a@[127.0.0.1]": False,  # IP literal
    "Ada <ada@example.com>": False,  # display name
    " ada@example.com": False,
    "ada@example.com ": False,
    "a..b@example.com": False,
    ".a@example.com": False,
    "a.@example.com": False,
    "a@-x.com": False,
    "a@x-.com": False,
    "a@x_y.com": False,
    "a@x..com": False,
    "@example.com": False,
    "a@": False,
    "a@@example.com": False,
}


def _random_ascii_addresses(count: int) -> list[str]:
    """Address-like ASCII strings from the pieces the rules are about (fixed seed): about
    about a third are addresses."""
    chance = random.Random(22)
    local = ["ada", "Z", "0", "+x", "o'h", "~"] * 8 + [".", "-", '"', "(", " ", "<", "[", "\\", ","]
    label = ["ada", "b", "Q7", "x-y"] * 6 + ["-", "_", "test", "--"]  # `xn--`: EMAIL_KINDS
    top = ["com", "Org", "x-y", "example"] * 6 + ["c0", "123", "-a", "a-", *SPECIAL_USE, "TeSt"]

    def draw(pieces: list[str], most: int) -> str:
        return "".join(chance.choices(pieces, k=chance.randint(1, most)))

    return [
        draw(local, 3)
        + "@"
        + ".".join([draw(label, 2) for _ in range(chance.randint(1, 2))] + [chance.choice(top)])
        for _ in range(count)
    ]


def _email_schema(document: dict[str, Any], operation: tuple[str, str], status: str) -> Any:
    """A validator of the `email` property of an operation's request body (`status` "")
    or response, as schemathesis validates it: jsonschema_rs, formats asserted."""
    path, method = operation
    described = document["paths"][path][method]
    holder = described["requestBody"] if not status else described["responses"][status]
    ref = holder["content"]["application/json"]["schema"]["$ref"]
    model = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return jsonschema_rs.Draft202012Validator(model["properties"]["email"], validate_formats=True)


def test_email_addresses_are_what_the_document_says(live: tuple[str, LiveService]) -> None:
    """Both ways: an address the document admits is taken (and one it refuses, refused
    with a 422), every kind and 200 random ASCII ones; every address the service
    returns is one the document's response schema admits, and one it takes back.
    (The storage changes no address: the S3 variants leave it to the local ones.)"""
    name, service = live
    if DOCUMENTS[name]["storage_backend"] != "local":
        pytest.skip("the storage answer changes no email address rule")
    document = httpx.get(service.openapi_url).json()
    register = (f"{API}/auth/register", "post")
    request = _email_schema(document, register, "")
    me = _email_schema(document, (f"{API}/users/me", "get"), "200")
    started = time.perf_counter()
    with httpx.Client(base_url=service.base_url, timeout=30) as http:

        def takes(address: str) -> bool:
            response = http.post(f"{API}/auth/password-reset/request", json={"email": address})
            assert response.status_code in (202, 422), (address, response.text)
            return response.status_code == 202

        for address, accepted in EMAIL_KINDS.items():
            assert request.is_valid(address) is accepted, f"the document on {address!r}"
            assert takes(address) is accepted, f"the service on {address!r}"
        addresses = _random_ascii_addresses(200)
        disagreements = [
            (address, request.is_valid(address))
            for address in addresses
            if request.is_valid(address) is not takes(address)
        ]
        assert not disagreements, disagreements
        admitted = sum(request.is_valid(address) for address in addresses)
        assert 40 < admitted < 160, admitted  # both sides of the line are drawn

    # The users stay: schemathesis, next, validates /users pages that hold their addresses.
    transport = name.split("-")[1]
    for address in [address for address, accepted in EMAIL_KINDS.items() if accepted]:
        with httpx.Client(base_url=service.base_url, timeout=30) as user:
            password = f"Contract-{uuid.uuid4().hex[:12]}"
            body = {"email": address, "password": password}
            assert user.post(f"{API}/auth/register", json=body).status_code == 202
            login = user.post(f"{API}/auth/login", json=body)
            assert login.status_code == 200, (address, login.text)
            if transport == "body":
                user.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            returned = user.get(f"{API}/users/me").json()["email"]
            assert me.is_valid(returned), f"{address!r} is returned as {returned!r}"
            assert request.is_valid(returned), f"{returned!r} cannot be sent back"
            again = user.post(f"{API}/auth/login", json={"email": returned, "password": password})
            assert again.status_code == 200, (returned, again.text)
    _timed(f"{name}: email addresses, both ways", started)


# Refusals of schema-valid requests that do not depend on the request's data: who is
# calling (401, 403: the fuzzer, as the administrator, may strip a role mid-run), what
# exists (404), the current state (409) and the rate limits, which are on (429).
ANY_OPERATION_REFUSES = ["2XX", "3XX", "401", "403", "404", "409", "429"]


def _contract_checks(project: Path) -> Path:
    """The service's own schemathesis checks (`tests/contract_checks.py`)."""
    return project / "tests" / "contract_checks.py"


def _business_refusals(project: Path) -> dict[str, frozenset[tuple[int, str]]]:
    """`BUSINESS_REFUSALS` of the service's checks: the (status, code) refusals of
    schema-valid requests by rules no JSON Schema can state, per operation id."""
    spec = importlib.util.spec_from_file_location("contract_checks", _contract_checks(project))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    refusals: dict[str, frozenset[tuple[int, str]]] = module.BUSINESS_REFUSALS
    return refusals


def schemathesis_config(project: Path) -> str:
    """`positive_data_acceptance` takes the statuses every operation may answer to valid
    data, and those of each operation's business rules; the service's
    `refusals_follow_business_rules` check then holds each such refusal to its `code`
    (a 422 `request_validation_error` is never one: the document would be wrong)."""
    lines = [
        "[checks.positive_data_acceptance]",
        f"expected-statuses = {json.dumps(ANY_OPERATION_REFUSES)}",
    ]
    for operation_id, refusals in sorted(_business_refusals(project).items()):
        statuses = sorted({str(status) for status, _ in refusals})
        lines += [
            "",
            "[[operations]]",
            # A GET's HEAD (`<id>_head`) answers as it does, without the body.
            f"include-operation-id = {json.dumps([operation_id, f'{operation_id}_head'])}",
            "checks.positive_data_acceptance.expected-statuses = "
            + json.dumps(ANY_OPERATION_REFUSES + statuses),
        ]
    return "\n".join(lines) + "\n"


# They would end the administrator's session under the fuzzer (the journeys cover them).
ENDS_THE_SESSION = ("auth_logout", "auth_logout_all", "auth_refresh", "auth_revoke_session")


def _admin_auth(service: LiveService, transport: str) -> str:
    """schemathesis.toml's `[auth]`: the administrator's credentials, per security scheme
    (so the checks that leave them out know what to leave out)."""
    response = httpx.post(
        f"{service.base_url}{API}/auth/login",
        json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
    )
    response.raise_for_status()
    if transport == "body":
        return f'[auth.openapi.HTTPBearer]\nbearer = "{response.json()["access_token"]}"\n'
    csrf = response.json()["csrf_token"]
    # The cookie the document names is the one the server reads (COOKIE_SECURE decides).
    schemes = httpx.get(service.openapi_url).json()["components"]["securitySchemes"]
    access = response.cookies[schemes["APIKeyCookie"]["name"]]
    return (
        f'[auth.openapi.APIKeyCookie]\napi_key = "{access}"\n'
        f'[auth.openapi.CSRFCookie]\napi_key = "{csrf}"\n'
        f'[auth.openapi.CSRFToken]\napi_key = "{csrf}"\n'
    )


def _only_unauthorized(output: str) -> set[str]:
    """The operations schemathesis saw answer nothing but 401 (its warning lists them)."""
    listed: set[str] = set()
    lines = iter(output.splitlines())
    for line in lines:
        if line.startswith("401 Unauthorized ("):
            for item in lines:
                if not item.startswith("  - "):
                    break
                listed.add(item.removeprefix("  - ").strip())
    return listed


def test_schemathesis_all_checks(
    live: tuple[str, LiveService], described: Description, tmp_path: Path
) -> None:
    """Every check, status-code conformance included, and the service's own checks
    (documented error codes, refusals by business rules only), as an administrator:
    0 failures.

    On the S3 variants, the operations that reach the storage: the storage answer
    changes only them (their code and, for the download, their document); the others
    are the local variant's, run there."""
    name, service = live
    transport = name.split("-")[1]
    config = tmp_path / "schemathesis.toml"
    config.write_text(_admin_auth(service, transport) + schemathesis_config(service.project))
    selected = [argument for op in ENDS_THE_SESSION for argument in ("--exclude-operation-id", op)]
    if DOCUMENTS[name]["storage_backend"] == "s3":
        assert described.storage_operations, "no operation reaches the storage"
        selected += [
            argument
            for op in described.storage_operations
            for argument in ("--include-operation-id", op)
        ]
    started = time.perf_counter()
    result = subprocess.run(
        [
            str(BIN_DIR / "schemathesis"),
            "--config-file",
            str(config),
            "run",
            service.openapi_url,
            "--checks",
            "all",
            "--max-examples",
            os.environ.get("CONTRACT_MAX_EXAMPLES", "15"),
            "--workers",
            "1",
            "--seed",
            "22",
            "--no-color",
            # Generating the longest bodies (100,000-character contents that must match a
            # pattern) is slow on a loaded machine; its speed is not the contract.
            "--suppress-health-check=too_slow",
            *selected,
        ],
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(_contract_checks(service.project))},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = result.stdout + result.stderr
    summary = [line for line in output.splitlines() if "generated" in line or " in " in line]
    print("\n".join(summary[-3:]))
    _timed(f"{name}: schemathesis --checks all", started)
    assert result.returncode == 0, output[-20000:]
    # An operation that answered only 401 never took the administrator's credentials (the
    # document named a cookie the server does not read), except the login, which answers
    # 401 to every password the fuzzer makes up. Only-403 can be the fuzzer's own doing:
    # as the administrator it may strip a role of a permission mid-run.
    assert _only_unauthorized(output) <= {f"POST {API}/auth/login"}, output[-20000:]
