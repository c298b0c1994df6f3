"""Context derived from the answers: the one place that maps answers to dependencies.

The generated pyproject.toml renders these lists as they are, so which variant
needs which package is declared here once, as data, instead of as conditionals
scattered through templates.
"""

from __future__ import annotations

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
    "prometheus-client>=0.21",
    "pydantic>=2.12",
    "pydantic-settings>=2.11",
    "pyjwt>=2.10.1",
    "python-multipart>=0.0.20",
    # hiredis: the C reply parser (a tenth less CPU per round trip on the auth path).
    "redis[hiredis]>=6.4",
    "sqlalchemy[asyncio]>=2.0.44",
    "starlette>=0.49",
    "structlog>=25.4",
    "uvicorn[standard]>=0.38",
]
DEV_DEPENDENCIES = [
    "httpx>=0.28.1",
    "import-linter>=2.5",
    "mypy>=1.18",
    "pytest>=9.0",
    "pytest-asyncio>=1.2",
    "ruff>=0.14",
    # The optional extras, so the type-check and tests cover the code that uses them.
    "opentelemetry-exporter-otlp-proto-http>=1.44",
    "opentelemetry-sdk>=1.44",
    "sentry-sdk>=2.20",
]
# Installed on demand (`uv sync --extra sentry`, or EXTRAS=sentry for the image): error
# tracking and trace export are one setting away, without every deployment carrying an
# SDK it does not use.
OPTIONAL_DEPENDENCIES = {
    "opentelemetry": [
        "opentelemetry-exporter-otlp-proto-http>=1.44",
        "opentelemetry-sdk>=1.44",
    ],
    "sentry": ["sentry-sdk>=2.20"],
}
# answer name -> answer value -> (extra runtime deps, extra dev deps)
VARIANT_DEPENDENCIES: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "storage_backend": {
        "local": ([], []),
        "s3": (["boto3>=1.40"], ["boto3-stubs[s3]>=1.40", "moto[server]>=5.1"]),
    },
    "email_provider": {
        "smtp": (["aiosmtplib>=4.0"], ["aiosmtpd>=1.4.6"]),
        "api": (["httpx>=0.28.1"], []),
    },
    "token_transport": {"cookie": ([], []), "body": ([], [])},
}


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
        context["runtime_dependencies"], context["dev_dependencies"] = dependencies_for(context)
        context["optional_dependencies"] = OPTIONAL_DEPENDENCIES
        context["python_target"] = "py" + context["python_version"].replace(".", "")
