"""Context derived from the answers: the one place that maps answers to dependencies.

The generated pyproject.toml renders these lists as they are, so which variant
needs which package is declared here once, as data, instead of as conditionals
scattered through templates.
"""

from __future__ import annotations

import re
from typing import Any

from copier_template_extensions import ContextHook

RUNTIME_DEPENDENCIES = [
    "alembic>=1.17",
    "aiosqlite>=0.21",
    "anyio>=4.9",
    "asyncpg>=0.30",
    "bcrypt>=5.0",
    "email-validator>=2.3",
    "fastapi>=0.143",
    "jinja2>=3.1.6",
    "limits>=5.5",
    # RFC 8265 (PRECIS OpaqueString): passwords compared as the same text however typed.
    "precis-i18n>=1.1.2",
    "prometheus-client>=0.21",
    "pydantic>=2.12",
    "pydantic-settings>=2.11",
    "pyjwt>=2.10.1",
    # 0.0.30: the fix of the 2026 multipart parsing advisories (CVE-2026-24486, CVE-2026-40347,
    # CVE-2026-42561), reachable through the upload route; 0.0.33: a media type in capitals
    # with parameters (`MULTIPART/FORM-DATA; boundary=...`, RFC 9110 8.3.1: case-insensitive)
    # is multipart too (before it Starlette read no form: a misleading 422).
    "python-multipart>=0.0.33",
    # hiredis: the C reply parser (a tenth less CPU per round trip on the auth path).
    # 8.0: what taskiq-redis (the worker's broker) requires.
    "redis[hiredis]>=8.0",
    # 2.1.2: ExceptionContext's attributes are assignable under mypy (its `__slots__` is
    # hidden from type checkers), which the statement-timeout handler sets.
    "sqlalchemy[asyncio]>=2.1.2",
    # 1.7.0: a malformed multipart body is a 400 (python-multipart's parse errors become
    # Starlette's MultiPartException); before it some framings escaped as 500s (the upload
    # route's contract fuzz found one). Also past CVE-2025-62727 (fixed in 0.49.1).
    "starlette>=1.7.0",
    "structlog>=25.4",
    # The background worker (app/worker): jobs on Redis Streams, acknowledged when done;
    # docs/background-work.md says why this engine.
    "taskiq>=0.13",
    "taskiq-redis>=1.2.4",
    "uvicorn[standard]>=0.38",
    # Password and SECRET_KEY strength estimation (Dropbox's zxcvbn): 4.5 ships the
    # 72-character cap that bounds its running time.
    "zxcvbn>=4.5",
]
# The checkers are pinned exactly: a new ruff, mypy or import-linter release can add a rule
# or an error, and `make check` on a fresh clone must not fail for that. Dependabot
# proposes each new version as a pull request, where the checks run first.
DEV_TOOLS = [
    "import-linter==2.17",
    "mypy==2.4.1",
    "ruff==0.17.6",
]
DEV_DEPENDENCIES = [
    *DEV_TOOLS,
    # `fastapi dev`: the development server every FastAPI guide starts with.
    "fastapi-cli>=0.0.34",
    "httpx>=0.28.1",
    "pytest>=9.0",
    "pytest-cov>=7.0",
    # 1.3: the first release that supports pytest 9.
    "pytest-asyncio>=1.3",
    # The contract fuzz run (tests/e2e/test_fuzz.py): requests generated from the OpenAPI
    # document; 4.32 is the release its hooks are written against.
    "schemathesis>=4.32",
    # The optional extras, so the type-check and tests cover the code that uses them.
    "opentelemetry-exporter-otlp-proto-http>=1.45",
    "opentelemetry-sdk>=1.45.2",
    "sentry-sdk>=2.20",
]
# Installed on demand (`uv sync --extra sentry`, or EXTRAS=sentry for the image): error
# tracking and trace export are one setting away, without every deployment carrying an
# SDK it does not use.
OPTIONAL_DEPENDENCIES = {
    "opentelemetry": [
        "opentelemetry-exporter-otlp-proto-http>=1.45",
        "opentelemetry-sdk>=1.45.2",
    ],
    "sentry": ["sentry-sdk>=2.20"],
}
# answer name -> answer value -> (extra runtime deps, extra dev deps)
VARIANT_DEPENDENCIES: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "storage_backend": {
        "local": ([], []),
        # moto is the S3-compatible server of the tests, of `make dev` and of the compose
        # stack's `s3` image (deploy/local-s3), which installs it alone: pyproject.toml
        # puts it in a group of its own, `local-s3`, that the dev group includes
        # (LOCAL_S3_PACKAGES). moto 5.1.0-5.2.1 leave out Content-Disposition on a
        # presigned download (test_s3_storage, test_files: KeyError 'content-disposition');
        # 5.2.2 is the first that passes. Measured with `uv lock --resolution lowest-direct` on an
        # s3 + api + cookie render: the whole suite passes at these floors (the template's
        # lowest-direct test runs the default answers only, to keep CI short).
        "s3": (["boto3>=1.40"], ["boto3-stubs[s3]>=1.40", "moto[server]>=5.2.2"]),
    },
    "email_provider": {
        # cryptography: the SMTP tests' throwaway certificate authority (TLS, STARTTLS).
        "smtp": (["aiosmtplib>=4.0"], ["aiosmtpd>=1.4.6", "cryptography>=44"]),
        # jsonschema: the tests validate each request against the email API's schema
        # (4.26: the lowest that schemathesis's openapi-schema-validator installs with).
        "api": (["httpx>=0.28.1"], ["jsonschema>=4.26", "types-jsonschema>=4.23"]),
    },
    "token_transport": {"cookie": ([], []), "body": ([], [])},
}


# The versions copier.yml offers as `python_version` (tests/test_extensions.py keeps the two
# equal): the service's trove classifiers name the chosen minimum and every newer one.
OFFERED_PYTHONS = ("3.11", "3.12", "3.13", "3.14")


def python_classifiers(minimum: str) -> list[str]:
    """Trove classifiers for `requires-python = ">=minimum"`: one per offered version from
    `minimum` on, then `3 :: Only`. Raises ValueError for a version copier.yml does not offer."""
    newer = OFFERED_PYTHONS[OFFERED_PYTHONS.index(minimum) :]
    return [
        *(f"Programming Language :: Python :: {version}" for version in newer),
        "Programming Language :: Python :: 3 :: Only",
    ]


# Dev requirements rendered as the `local-s3` dependency group (see "s3" above).
LOCAL_S3_PACKAGES = ("moto",)


def local_s3_group(dev: list[str]) -> list[str]:
    """The requirements of `dev` that make up the `local-s3` group."""
    # The name is what precedes the extras, the version or the markers (PEP 508).
    return [
        line for line in dev if re.split(r"[\[<>=!~;\s]", line, maxsplit=1)[0] in LOCAL_S3_PACKAGES
    ]


def dependencies_for(answers: dict[str, Any]) -> tuple[list[str], list[str]]:
    runtime, dev = list(RUNTIME_DEPENDENCIES), list(DEV_DEPENDENCIES)
    for question, by_answer in VARIANT_DEPENDENCIES.items():
        extra_runtime, extra_dev = by_answer[answers[question]]
        runtime += extra_runtime
        dev += extra_dev
    # A package the service needs at runtime is not repeated in the dev group (httpx for api).
    return sorted(set(runtime), key=str.lower), sorted(set(dev) - set(runtime), key=str.lower)


class VariantContext(ContextHook):
    def hook(self, context: dict[str, Any]) -> None:
        # Defaults are rendered while prompting, before every answer exists:
        # act only when rendering files.
        if str(context.get("_copier_phase")) != "render":
            return
        context["runtime_dependencies"], dev = dependencies_for(context)
        context["local_s3_dependencies"] = local_s3_group(dev)
        context["dev_dependencies"] = [
            line for line in dev if line not in context["local_s3_dependencies"]
        ]
        context["optional_dependencies"] = OPTIONAL_DEPENDENCIES
        context["python_target"] = "py" + context["python_version"].replace(".", "")
        context["python_classifiers"] = python_classifiers(context["python_version"])
