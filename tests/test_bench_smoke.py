"""The benchmark harness (`python -m bench`) keeps working.

These tests assert that the harness runs and reports, never how fast anything is:
figures on a shared CI machine are not benchmarks. The smoke run needs PostgreSQL and
Redis (TEST_DATABASE_URL / TEST_REDIS_URL, whose servers it uses for its own database
and key prefix) and wrk, which the harness installs with apt-get when running as root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.endpoints import ENDPOINTS
from bench.replicas import ENDPOINTS as REPLICA_RUNS
from bench.replicas import SETUPS
from bench.wrk import WrkError, locate_wrk, parse_output

REPO_ROOT = Path(__file__).resolve().parent.parent
SMOKE_TIMEOUT_S = 600

WRK_OK = """\
Running 15s test @ http://127.0.0.1:8000/health/live
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.21ms    1.02ms  30.12ms   90.12%
    Req/Sec     5.01k   412.33     5.80k    72.00%
  Latency Distribution
     50%  812.00us
     75%    3.45ms
     90%    4.02ms
     99%    1.20s
  149616 requests in 15.00s, 21.12MB read
Requests/sec:   9974.07
Transfer/sec:      1.41MB
"""

WRK_ERRORS = """\
Running 1m test @ http://127.0.0.1:8000/api/v1/auth/login
  2 threads and 32 connections
  Latency Distribution
     50%    1.50s
     75%    2.00s
     90%    2.50s
     99%    1.05m
  1200 requests in 1.00m, 1.12MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 17
Requests/sec:     20.00
Transfer/sec:     19.11KB
"""


def test_wrk_report_is_parsed_in_milliseconds() -> None:
    result = parse_output(WRK_OK)
    assert result.requests == 149616
    assert result.duration_s == pytest.approx(15.0)
    assert result.requests_per_second == pytest.approx(9974.07)
    assert result.p50_ms == pytest.approx(0.812)
    assert result.p90_ms == pytest.approx(4.02)
    assert result.p99_ms == pytest.approx(1200.0)
    assert result.errors == 0


def test_wrk_socket_errors_and_non_2xx_are_counted() -> None:
    result = parse_output(WRK_ERRORS)
    assert result.socket_errors == {"connect": 1, "read": 2, "write": 3, "timeout": 4}
    assert result.non_2xx == 17
    assert result.errors == 27
    assert result.duration_s == pytest.approx(60.0)
    assert result.p99_ms == pytest.approx(63_000.0)


def test_wrk_output_without_latency_distribution_is_refused() -> None:
    without_percentiles = "\n".join(
        line for line in WRK_OK.splitlines() if "%" not in line or "Stdev" in line
    )
    with pytest.raises(WrkError, match="latency distribution"):
        parse_output(without_percentiles)


def _services() -> tuple[str, str]:
    database_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not (database_url and redis_url):
        pytest.skip("the benchmark smoke run needs TEST_DATABASE_URL and TEST_REDIS_URL")
    return database_url, redis_url


@pytest.mark.slow
def test_smoke_run_reports_every_endpoint(tmp_path: Path) -> None:
    database_url, redis_url = _services()
    try:
        locate_wrk()  # installs it with apt-get when running as root
    except WrkError as error:
        pytest.fail(str(error))
    output = tmp_path / "latest.json"
    env = {**os.environ}
    env.pop("VIRTUAL_ENV", None)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            f"--output={output}",
            f"--database-url={database_url}",
            f"--redis-url={redis_url}",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
        check=False,
    )
    transcript = f"--- stdout ---\n{completed.stdout}\n--- stderr ---\n{completed.stderr}"
    assert completed.returncode == 0, transcript

    table = completed.stdout.split("endpoint ", 1)[-1]
    for endpoint in ENDPOINTS:
        assert endpoint.label in table, f"{endpoint.label} missing from the table\n{transcript}"
    assert "users/me rps / bare floor rps" in completed.stdout

    results = json.loads(output.read_text())
    runs = {run["endpoint"]: run for run in results["runs"]}
    assert set(runs) == {endpoint.key for endpoint in ENDPOINTS}
    for key, run in runs.items():
        assert run["requests_per_second"] > 0, f"{key}: no requests\n{transcript}"
        assert run["errors"] == 0, f"{key}: {run}\n{transcript}"
        assert run["p99_ms"] >= run["p50_ms"] > 0
    assert results["errors"] == []

    (flood,) = results["login_flood"]
    for part in ("alone", "flooded", "login"):
        assert flood[part]["requests_per_second"] > 0
        assert flood[part]["errors"] == 0
    servers = {(s["server"], s["workers"]): s for s in results["servers"]}
    assert set(servers) == {("hello", 1), ("app", 1)}
    assert all(s["startup_s"] > 0 for s in servers.values())
    assert all(s["worker_rss_mb"][0] > 0 for s in servers.values())
    assert results["copier_copy_s"] > 0
    costs = {cost["endpoint"]: cost for cost in results["costs"]}
    assert set(costs) == {"users_me", "articles_list", "articles_create", "login"}
    # Counted, not timed: what a request costs in steady state (bench/costs.py).
    assert costs["users_me"]["statements"] == 0, "the snapshot comes from Redis"
    assert costs["users_me"]["redis_commands"] >= 1, "authenticated and counted in Redis"
    assert costs["articles_create"]["statements"] >= 1
    assert costs["articles_create"]["transactions"] >= 1
    assert results["connections"]["database_sessions"] >= 1
    assert results["connections"]["redis_clients"] >= 1
    assert results["targets"]
    assert all(t["measured"] is not None for t in results["targets"])


@pytest.mark.slow
def test_replica_smoke_run_reports_both_setups(tmp_path: Path) -> None:
    """`python -m bench.replicas --smoke`: reads on a standby versus all on the primary."""
    _, redis_url = _services()
    output = tmp_path / "replicas.json"
    env = {**os.environ}
    env.pop("VIRTUAL_ENV", None)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.replicas",
            "--smoke",
            f"--output={output}",
            f"--redis-url={redis_url}",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
        check=False,
    )
    transcript = f"--- stdout ---\n{completed.stdout}\n--- stderr ---\n{completed.stderr}"
    assert completed.returncode == 0, transcript

    rows = json.loads(output.read_text())["rows"]
    measured = {(row["setup"], row["endpoint"]) for row in rows}
    assert measured == {(setup, endpoint.label) for setup in SETUPS for endpoint in REPLICA_RUNS}
    for row in rows:
        assert row["requests_per_second"] > 0, f"{row}\n{transcript}"
        assert row["errors"] == 0, f"{row}\n{transcript}"
    on_standby = [row for row in rows if row["setup"] == SETUPS[0]]
    assert any(row["standby_cpu_ms_per_request"] > 0 for row in on_standby), transcript
    assert "GET /api/v1/articles?limit=100" in completed.stdout
