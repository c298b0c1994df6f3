"""The generated suite on backends a test module starts itself (PgBouncer, a Redis Cluster,
a Sentinel group): its parts that touch the database or Redis, the pure unit tests left
to the variants' own runs (tests/test_variants.py), and a few files whose work does not
change with the backend's topology left out, each with the reason (`LEFT_OUT`).

Every generated test the run skips must say why with one of the reasons the caller
allows: a topology never quietly runs less than it claims.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.conftest import suite_runs, summary_sections
from tests.rendering import run_in_service

# Files of tests/integration and tests/e2e that the variants' suites on PostgreSQL+Redis
# already run, whose work a pooler or a Redis topology does not change, and which are
# among the suite's slowest: left out of these runs.
LEFT_OUT = {
    # Schemathesis's ~2,300 requests (about a minute of CPU): what the OpenAPI document
    # promises, the same on every backend; the requests' Redis and database use is the
    # rest of the suite's.
    "tests/e2e/test_fuzz.py": "the contract fuzz run: the API's shape, not the backend's",
    # A throwaway primary and standby of its own (tests/postgres_cluster.py): neither
    # PgBouncer nor the topology under test is on its path.
    "tests/e2e/test_read_replicas.py": "reads from servers of its own, not the pooler's",
}
# The parts of the suite that touch the database (through the app or its own engines) or
# Redis: every end-to-end test authenticates and counts each request in Redis.
DATABASE_AND_REDIS = ["tests/integration", "tests/e2e"]
# The parts that touch Redis: the cache's integration tests, the end-to-end suite, and
# the hash-slot rules checked against a real server when there is one.
REDIS_ONLY = [
    "tests/integration/test_cache.py",
    "tests/integration/test_auto_pipeline.py",
    "tests/integration/test_read_cache.py",
    "tests/integration/test_rate_limit_storage.py",
    "tests/unit/test_hash_slots.py",
    "tests/e2e",
]


def run_backend_suite(
    project: Path,
    paths: list[str],
    *,
    variant: str,
    label: str,
    env: dict[str, str | None],
    allowed_skips: set[str],
    header: str,
) -> str:
    """Run the generated suite's `paths` in `project` with `env` (TEST_DATABASE_URL,
    TEST_REDIS_URL, ...), minus `LEFT_OUT`; fails unless it passes, its header names the
    backends (`header`), and every skip has a reason among `allowed_skips`. Returns
    pytest's output."""
    ignored = [f"--ignore={path}" for path in LEFT_OUT]
    result = run_in_service(
        project,
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", *ignored, *paths],
        variant=variant,
        step=f"pytest ({label})",
        env=env,
        backend=label,
        runs=suite_runs,
        timeout=1800,
    )
    assert header in result.stdout, result.stdout[:2000]
    skipped = re.findall(r"^SKIPPED \[\d+\] \S+: (.*)$", result.stdout, re.MULTILINE)
    assert set(skipped) <= allowed_skips, skipped
    counts = re.findall(r"^=*\s*(\d+ passed.*?) in [\d.]+s", result.stdout, re.MULTILINE)
    assert counts, result.stdout[-2000:]
    summary_sections.setdefault("Generated suites on servers of their own", []).append(
        f"{variant}, {label}: {counts[-1]}"
    )
    return result.stdout
