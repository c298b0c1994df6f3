"""Schemathesis hooks for the contract fuzz run (`tests/e2e/test_fuzz.py`), loaded by the
`st` command through SCHEMATHESIS_HOOKS.

- `FuzzCaller` logs in as the user named by FUZZ_EMAIL / FUZZ_PASSWORD (at FUZZ_BASE_URL)
  and authenticates every request as them. The fuzzer also calls logout and revokes
  sessions whose ids it has seen: after any 401 the next request logs in again, so
  one such call does not turn the rest of the run into 401s.
- The checks of `tests/contract_checks.py` are registered with it.
"""

import os
from typing import Any

import httpx
import schemathesis

from tests import contract_checks  # noqa: F401  (registers its checks)
from tests.helpers import API, _logged_in


@schemathesis.auth(refresh_interval=600, retry_on=[401])
class FuzzCaller:
    def get(self, case: schemathesis.Case[Any], ctx: schemathesis.AuthContext) -> dict[str, str]:
        credentials = {"email": os.environ["FUZZ_EMAIL"], "password": os.environ["FUZZ_PASSWORD"]}
        response = httpx.post(f"{os.environ['FUZZ_BASE_URL']}{API}/auth/login", json=credentials)
        response.raise_for_status()
        return _logged_in(response).headers

    def set(
        self, case: schemathesis.Case[Any], data: dict[str, str], ctx: schemathesis.AuthContext
    ) -> None:
        case.headers.update(data)  # always a mapping, empty when none were generated
