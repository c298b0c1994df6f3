"""`python -m bench.outbox`: the email outbox's throughput and its cost on registration.

Renders the default variant (or uses --project, a rendered service with its .venv),
then runs `outbox_probe.py` inside it against PostgreSQL and Redis (TEST_DATABASE_URL /
TEST_REDIS_URL, else the local defaults) and prints:

- the added cost of the outbox write on POST /auth/register: a transaction inserting a
  user, against one inserting the user and its rendered welcome message;
- messages per second from the outbox through N real worker processes to a local SMTP
  sink, for each N in --workers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.render import REPO_ROOT, copier_copy, snapshot
from bench.seed import default_server_urls

PROBE = Path(__file__).with_name("outbox_probe.py")


def prepare(project: Path | None, scratch: Path) -> Path:
    if project is not None:
        return project
    template = snapshot(REPO_ROOT, scratch / "template")
    destination = scratch / "svc"
    copier_copy(template, destination)
    subprocess.run(["uv", "sync", "--locked", "--quiet"], cwd=destination, check=True)
    return destination


def probe(project: Path, messages: int, workers: int, samples: int) -> dict[str, dict[str, float]]:
    server_url, redis_url = default_server_urls()
    server_url = server_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    result = subprocess.run(
        [
            str(project / ".venv/bin/python"),
            str(PROBE),
            server_url,
            redis_url,
            str(messages),
            str(workers),
            str(samples),
        ],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        raise SystemExit(f"the probe failed:\n{result.stderr[-4000:]}")
    figures: dict[str, dict[str, float]] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outbox", description=__doc__)
    parser.add_argument("--project", type=Path, help="a rendered service with its .venv")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--workers", default="1,2", help="worker process counts, e.g. 1,2")
    parser.add_argument("--samples", type=int, default=300, help="transactions per kind")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as scratch:
        project = prepare(args.project, Path(scratch))
        for index, workers in enumerate(int(n) for n in args.workers.split(",")):
            figures = probe(project, args.messages, workers, args.samples if index == 0 else 5)
            if index == 0:
                cost = figures["register_write"]
                print("Registration transaction (PostgreSQL), median / p95:")
                print(
                    f"  user only          {cost['user_median_ms']:.2f} ms"
                    f" / {cost['user_p95_ms']:.2f} ms"
                )
                print(
                    f"  user + outbox row  {cost['user_outbox_median_ms']:.2f} ms"
                    f" / {cost['user_outbox_p95_ms']:.2f} ms"
                )
                print(f"  added by the outbox write: {cost['added_median_ms']:.2f} ms (median)")
                print("Outbox throughput (relay -> taskiq workers on Redis -> SMTP sink):")
            flow = figures["throughput"]
            print(
                f"  {workers} worker(s): {flow['messages']:.0f} messages in"
                f" {flow['seconds']:.2f} s = {flow['per_second']:.0f} messages/s"
                f" (sink received {flow['sink_received']:.0f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
