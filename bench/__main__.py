"""`python -m bench`: benchmark the service the template generates (see README, Benchmarks)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from bench import report, runner, seed
from bench.endpoints import ENDPOINTS_BY_KEY
from bench.render import REPO_ROOT


def _workers(text: str) -> tuple[int, ...]:
    counts = tuple(int(part) for part in text.split(",") if part.strip())
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of worker counts, e.g. 1,2")
    return counts


def _profile(text: str) -> tuple[str, ...]:
    keys = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [key for key in keys if key != "auto" and key not in ENDPOINTS_BY_KEY]
    if unknown:
        choices = ", ".join(k for k, e in ENDPOINTS_BY_KEY.items() if e.server == "app")
        raise argparse.ArgumentTypeError(f"unknown endpoint {unknown}; choose from {choices}")
    return keys


def parse_args(argv: list[str]) -> runner.Options:
    database_url, redis_url = seed.default_server_urls()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Render the default variant, serve it with uvicorn and drive it with wrk.",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="1 s per endpoint, 1 worker, 100 articles, BCRYPT_ROUNDS=4",
    )
    parser.add_argument("--duration", type=int, help="seconds per endpoint (default 15)")
    parser.add_argument(
        "--warmup", type=int, help="seconds of warm-up load per endpoint (default 2)"
    )
    parser.add_argument("--workers", type=_workers, help="worker counts to run (default 1,2)")
    parser.add_argument("--threads", type=int, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, help="wrk connections (default 32)")
    parser.add_argument("--articles", type=int, help="seeded published articles (default 1000)")
    parser.add_argument("--bcrypt-rounds", type=int, help="BCRYPT_ROUNDS of the app (default 12)")
    parser.add_argument(
        "--profile",
        type=_profile,
        nargs="?",
        const=("auto",),
        default=(),
        help="py-spy profiles at 1 worker: endpoint keys (login,users_me,...) or, without a "
        "value, the two slowest app endpoints; needs `uv pip install py-spy`",
    )
    parser.add_argument(
        "--database-url",
        default=database_url,
        help="PostgreSQL server (default: $TEST_DATABASE_URL or local postgres)",
    )
    parser.add_argument(
        "--redis-url",
        default=redis_url,
        help="Redis (default: $TEST_REDIS_URL or redis://127.0.0.1:6379/0)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=runner.DEFAULT_OUTPUT,
        help="JSON results file (default bench/results/latest.json)",
    )
    parser.add_argument(
        "--template",
        type=Path,
        default=REPO_ROOT,
        help="template repository whose working tree is rendered (default: this one)",
    )
    args = parser.parse_args(argv)
    overrides = {
        name: value
        for name, value in {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "workers": args.workers,
            "threads": args.threads,
            "connections": args.connections,
            "articles": args.articles,
            "bcrypt_rounds": args.bcrypt_rounds,
        }.items()
        if value is not None
    }
    common = {
        "database_url": args.database_url,
        "redis_url": args.redis_url,
        "output": args.output.resolve(),
        "template": args.template.resolve(),
        "profile": args.profile,
    }
    if args.smoke:
        return runner.Options.smoke_defaults(**common, **overrides)
    return runner.Options(**common, **overrides)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Unwind like Ctrl-C, so servers are stopped and the database and keys are cleaned up.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    results = runner.run(options)
    print()
    print(report.format_table(results))
    print(report.format_summary(results))
    results.write_json(options.output)
    print(f"\nresults: {options.output}")
    if options.smoke:
        print("smoke mode: checks that the harness works; its figures are not benchmarks")
    problems = results.errors()
    if problems:
        print("\nruns with errors (their figures are not valid):", *problems, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
