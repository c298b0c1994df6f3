"""Mutation score of the generated service's security-critical modules (mutmut).

    uv run python -m bench.mutation [--module app/core/security.py ...] [--keep DIR]

Renders the default variant, configures mutmut (`[tool.mutmut]` in the rendered
pyproject.toml) to mutate only SECURITY_MODULES and to run only TEST_SELECTION (the tests
that exercise them; mutmut runs, for each mutant, the selected tests that reach the
mutated function), runs it under `nice -n 9`, and prints killed / total per module.

The suite runs on SQLite and the in-process cache here (TEST_DATABASE_URL and
TEST_REDIS_URL are cleared): each mutant costs a few test runs, and the PostgreSQL-only
races are covered by their own tests (tests/e2e/test_concurrent_writes.py). Not part of
CI: the full run takes about half an hour on two cores. Surviving mutants are explained
in docs/testing.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

from bench.render import REPO_ROOT, copier_copy, snapshot

SECURITY_MODULES = [
    "app/core/security.py",
    "app/services/auth_service.py",
    "app/services/authorization.py",
    "app/core/rate_limit.py",
    "app/core/config.py",
    "app/services/password_policy.py",
    "app/services/one_time_tokens.py",
]
TEST_SELECTION = [
    "tests/unit",
    "tests/integration/test_cli.py",  # create-admin applies the password policy
    "tests/integration/test_user_service.py",
    "tests/e2e/test_auth.py",
    "tests/e2e/test_welcome_email.py",  # what registration returns is who gets the email
    "tests/e2e/test_password_policy.py",  # the 422 names the field on every path
    "tests/e2e/test_credential_checks.py",
    "tests/e2e/test_login_enumeration.py",
    "tests/e2e/test_login_in_flight.py",  # logout-all locks the user row first
    "tests/e2e/test_sessions.py",
    "tests/e2e/test_body_transport.py",
    "tests/e2e/test_one_time_tokens.py",
    "tests/e2e/test_rate_limits.py",
    "tests/e2e/test_api_rate_limits.py",
    "tests/e2e/test_require_permission.py",
    "tests/e2e/test_permission_cache.py",  # a cached caller costs no query
    "tests/e2e/test_role_matrix.py",
    "tests/e2e/test_ownership.py",
    "tests/e2e/test_last_administrator.py",
    "tests/e2e/test_privilege_escalation.py",  # no grant or erasure beyond one's rank
    # Skip without Redis, as here: the Redis branch of create_rate_limiter (see the docs).
    "tests/integration/test_rate_limit_storage.py",
]
AIM = 0.85
SKIPPED_DIRS = {"app", "mutants", ".git", ".venv", "pyproject.toml"}


def configure(service: Path, modules: list[str]) -> None:
    also_copy = sorted(entry.name for entry in service.iterdir() if entry.name not in SKIPPED_DIRS)
    lines = [
        "",
        "[tool.mutmut]",
        'source_paths = ["app/"]',
        f"only_mutate = {json.dumps(modules)}",
        # The error-tracking tests start interpreters of their own: slow, and unrelated.
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", '
        '"--ignore=tests/unit/test_error_tracking.py"]',
        f"pytest_add_cli_args_test_selection = {json.dumps(TEST_SELECTION)}",
        f"also_copy = {json.dumps(also_copy)}",
        # mutmut stops a mutant's tests after (estimate + constant) x 15 seconds of wall
        # clock; with its default constant (1 s) a loaded machine turns slow test starts
        # into "timeouts", which count as killed and inflate the score.
        "timeout_constant = 10",
    ]
    with (service / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n".join(lines) + "\n")


# --sample N: the mutants whose number ends in these digits, about one in N of every
# function's (mutmut numbers each function's mutants from 1).
SAMPLE_DIGITS = {2: "02468", 5: "05", 10: "0"}


def run_mutmut(service: Path, max_children: int, sample: int | None = None) -> float:
    env = {k: v for k, v in os.environ.items() if k not in {"TEST_DATABASE_URL", "TEST_REDIS_URL"}}
    mutmut = Path(sys.executable).parent / "mutmut"
    # Below the other work on the machine, but not at 19: the hashing threads' test
    # checks they run 10 levels lower than the process, which Linux caps at 19.
    command = ["nice", "-n", "9", str(mutmut), "run", "--max-children", str(max_children)]
    if sample is not None:
        command.append(f"*__mutmut_*[{SAMPLE_DIGITS[sample]}]")
    started = time.perf_counter()
    result = subprocess.run(command, cwd=service, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"mutmut failed ({result.returncode}):\n{result.stdout[-3000:]}")
    return elapsed


def scores(service: Path, modules: list[str]) -> dict[str, tuple[Counter[str], list[str]]]:
    """Per module: mutmut's outcome counts ("killed", "survived", "no tests", "timeout",
    "not checked", ...) and the names of the mutants that lived."""
    found: dict[str, tuple[Counter[str], list[str]]] = {}
    for module in modules:
        path = service / "mutants" / f"{module}.meta"
        if not path.exists():  # not mutated in this run
            continue
        meta = json.loads(path.read_text())
        counts: Counter[str] = Counter()
        alive = []
        for name, code in meta["exit_code_by_key"].items():
            outcome = status_by_exit_code[code]
            counts[outcome] += 1
            if outcome in {"survived", "no tests"}:
                alive.append(name)
        found[module] = (counts, alive)
    return found


def score(counts: Counter[str]) -> float | None:
    """Killed share of the checked mutants (None before any is checked); a mutant that
    makes the tests hang (timeout) or fail to type-check is caught too."""
    caught = counts["killed"] + counts["timeout"] + counts["caught by type check"]
    checked = sum(counts.values()) - counts["not checked"]
    return caught / checked if checked else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", choices=SECURITY_MODULES)
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="render here and keep it (mutmut browse)")
    parser.add_argument("--list-survivors", action="store_true")
    parser.add_argument(
        "--sample",
        type=int,
        choices=sorted(SAMPLE_DIGITS),
        help="check about one mutant in N of each function (the others stay unchecked)",
    )
    parser.add_argument(
        "--report", type=Path, help="print the scores of a run kept with --keep, then stop"
    )
    args = parser.parse_args()
    if args.report:
        report(scores(args.report, SECURITY_MODULES), 0.0, list_survivors=args.list_survivors)
        return
    modules = args.module or SECURITY_MODULES

    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:
        template = snapshot(REPO_ROOT, Path(scratch) / "template")
        service = args.keep or Path(scratch) / "service"
        copier_copy(template, service)
        configure(service, modules)
        elapsed = run_mutmut(service, args.max_children, args.sample)
        results = scores(service, modules)

    report(results, elapsed, list_survivors=args.list_survivors)


def report(
    results: dict[str, tuple[Counter[str], list[str]]], elapsed: float, *, list_survivors: bool
) -> None:
    print(f"mutmut over {len(results)} modules in {elapsed:.0f} s (aim: {AIM:.0%} killed)")
    print(
        f"{'module':<34} {'mutants':>7} {'checked':>7} {'killed':>7} {'survived':>8} "
        f"{'no tests':>8} {'timeout':>7} {'score':>6}"
    )
    below = []
    for module, (counts, alive) in results.items():
        total = sum(counts.values())
        checked = total - counts["not checked"]
        module_score = score(counts)
        shown = "-" if module_score is None else f"{module_score:.1%}"
        print(
            f"{module:<34} {total:>7} {checked:>7} {counts['killed']:>7} "
            f"{counts['survived']:>8} {counts['no tests']:>8} {counts['timeout']:>7} {shown:>6}"
        )
        if module_score is not None and module_score < AIM:
            below.append(module)
        if list_survivors:
            for name in alive:
                print(f"    {name}")
    if below:
        print(f"below the aim: {', '.join(below)}")


if __name__ == "__main__":
    main()
