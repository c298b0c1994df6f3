"""The timeout budget's layers agree (docs/timeout-budget.md): the app's budget for a call
to a backing service (app/core/timeouts.py) ends before uvicorn's graceful shutdown,
which ends before nginx gives up on a replica, which ends before the client does; and
the documentation gives the numbers the files hold. Read from the template's files: no
render needed."""

import re
from pathlib import Path

from tests.conftest import REPO_ROOT

TEMPLATE = REPO_ROOT / "template"
DOC = REPO_ROOT / "docs" / "timeout-budget.md"


def _number(path: Path, pattern: str) -> float:
    found = re.search(pattern, path.read_text())
    assert found is not None, f"{pattern!r} not found in {path.relative_to(REPO_ROOT)}"
    return float(found[1])


def _layers() -> tuple[float, float, float]:
    """The budget, the graceful shutdown and nginx's proxy_read_timeout, in seconds."""
    [proxy_conf] = TEMPLATE.glob("deploy/*nginx*/proxy.conf")
    return (
        _number(TEMPLATE / "app/core/timeouts.py.jinja", r"OUTBOUND_BUDGET_SECONDS = ([\d.]+)"),
        _number(TEMPLATE / "Dockerfile.jinja", r'"--timeout-graceful-shutdown",\s*"(\d+)"'),
        _number(proxy_conf, r"proxy_read_timeout (\d+)s;"),
    )


def test_each_layer_waits_longer_than_the_one_inside_it() -> None:
    budget, grace, proxy = _layers()
    client = _number(DOC, r"\| the client \| at least (\d+) s \|")

    assert budget < grace < proxy < client


def test_the_documentation_gives_the_numbers_in_force() -> None:
    budget, grace, proxy = _layers()
    text = DOC.read_text()

    assert f"ends, answered or failed, within {budget:g} s" in text
    assert f"| {grace:g} s | `Dockerfile`" in text
    assert f"| {proxy:g} s | `deploy/nginx/proxy.conf`" in text


def test_a_worker_waits_longer_for_its_jobs_than_a_call_may_take() -> None:
    """Every place that starts a worker gives it the same wait for the jobs in hand on
    SIGTERM, above the budget (an email being sent ends first), as the page says."""
    budget, _, _ = _layers()
    [compose] = TEMPLATE.glob("*docker-compose.yml*")
    [worker] = TEMPLATE.glob("deploy/*kubernetes*/app/worker.yaml.jinja")
    waits = {
        _number(compose, r'"--wait-tasks-timeout", "(\d+)"'),
        _number(worker, r"--wait-tasks-timeout=(\d+)"),
        _number(TEMPLATE / "Makefile.jinja", r"--wait-tasks-timeout (\d+)"),
    }
    assert len(waits) == 1, waits
    [wait] = waits
    assert budget < wait
    assert f"| {wait:g} s | `--wait-tasks-timeout`" in DOC.read_text()
