"""The contract fuzz run: schemathesis sends requests generated from the service's own
OpenAPI document to the app served by uvicorn, as an administrator and as an ordinary
user, and checks every answer: no server error (5xx); every response of the content
type, schema and headers the document gives for its status, with an error `code` that
status names; and a request the document calls valid refused only by a business rule
(`tests/contract_checks.py`).

Rate limits are on, as in production: the general ones are raised so that the run tests
the API rather than the limiter, the routes' own (the upload's) stay as they are, and a
429 is an answer the document gives. The fuzzer logs in again whenever a request of its
own (logout, say) ended its session (`tests/fuzz_checks.py`). The run is bounded to keep
the suite short: FUZZ_MAX_EXAMPLES examples per operation (default 5) in the fuzzing
phase, and the coverage phase (boundary values of every parameter, and values just past
them) as the administrator only, who reaches every operation. Raise FUZZ_MAX_EXAMPLES
locally to search deeper.
"""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvicorn

from app.core.config import Settings
from app.core.resources import Resources
from app.main import API_PREFIX, create_app
from tests.helpers import DEFAULT_PASSWORD, free_port, register_user, set_roles, unique_email

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "5"))
CHECKS = ",".join(
    [
        "not_a_server_error",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        # tests/contract_checks.py
        "documented_error_code",
        "refusals_follow_business_rules",
        "documented_cookies",
    ]
)
SERVICE_ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def _served(settings: Settings) -> AsyncIterator[str]:
    """A new instance of the app with room for the fuzzer in its general rate limits,
    served by uvicorn; its base URL."""
    app = create_app(
        settings.model_copy(
            update={
                "rate_limit_enabled": True,
                "rate_limit_per_user": "1000000/minute",
                "rate_limit_per_ip": "1000000/minute",
                "login_rate_limit_per_ip": "1000000/minute",
                "login_rate_limit_per_account": "1000000/minute",
                "email_link_rate_limit": "1000000/minute",
            }
        )
    )
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    async with app.router.lifespan_context(app):
        task = asyncio.create_task(server.serve())
        for _ in range(1000):  # uvicorn starts in well under 10 s
            if server.started:
                break
            await asyncio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task


async def _fuzz(base_url: str, email: str, phases: str) -> tuple[int, str]:
    command = [
        str(Path(sys.executable).with_name("st")),
        f"--config-file={SERVICE_ROOT / 'tests' / 'fuzz.toml'}",
        "run",
        f"{base_url}{API_PREFIX}/openapi.json",
        f"--checks={CHECKS}",
        f"--max-examples={MAX_EXAMPLES}",
        f"--phases={phases}",
        "--workers=1",
        "--seed=16",
        "--no-color",
        "--suppress-health-check=all",
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=SERVICE_ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(SERVICE_ROOT),
            "SCHEMATHESIS_HOOKS": "tests.fuzz_checks",
            "FUZZ_BASE_URL": base_url,
            "FUZZ_EMAIL": email,
            "FUZZ_PASSWORD": DEFAULT_PASSWORD,
        },
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_the_api_keeps_its_contract_under_fuzzing(
    settings: Settings, resources: Resources
) -> None:
    async with _served(settings) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            admin = await register_user(client, email=unique_email("fuzz-admin"))
            await set_roles(resources, admin["id"], "admin")
            user = await register_user(client, email=unique_email("fuzz-user"))
        failed = []
        # The user first: schemathesis reuses ids it saw in responses, so the administrator's
        # run can delete or deactivate the user's account (and does).
        for caller, email, phases in (
            ("user", user["email"], "examples,fuzzing"),
            ("administrator", admin["email"], "examples,coverage,fuzzing"),
        ):
            code, output = await _fuzz(base_url, email, phases)
            # The summary always (operations and cases), the whole report on a failure.
            report = output if code else output[output.rfind("API Operations:") :]
            print(f"\n--- schemathesis as {caller} ({phases}) ---\n{report}")
            if code:
                failed.append(caller)

    assert not failed, f"contract violations found as {failed} (see the report above)"
