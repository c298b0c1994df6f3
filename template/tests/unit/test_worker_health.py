"""The heartbeat files of the background processes (`app.worker.health`): one per
process, and the check that every one whose owner runs is fresh. The real processes
are in tests/integration/test_worker.py."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from app.worker import health


@pytest.fixture(autouse=True)
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def worker_file(directory: Path, place: str, owner: int | None = None) -> Path:
    """The file of a worker of a process manager (by default the one running the tests:
    it runs)."""
    return directory / f"worker.{owner or os.getppid()}.{place}.heartbeat"


def gone_pid() -> int:
    """The pid of a process that ended."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def test_each_worker_process_has_a_file_of_its_own() -> None:
    assert health.heartbeat_file("worker") != health.heartbeat_file("scheduler")
    assert health.heartbeat_file("worker").name.endswith(".MainProcess.heartbeat")


def test_every_worker_must_beat(directory: Path) -> None:
    assert not health.is_alive("worker"), "no worker at all"
    first, second = worker_file(directory, "worker-0"), worker_file(directory, "worker-1")
    health.enter(first)
    health.enter(second)
    assert health.is_alive("worker")

    os.utime(second, (0, 0))  # hung, or restarting in a loop, long enough
    assert not health.is_alive("worker"), "one stale worker beside a fresh one"


def test_a_process_restarted_in_the_same_place_does_not_pass_for_alive(directory: Path) -> None:
    place = worker_file(directory, "worker-0")
    health.enter(place)
    os.utime(place, (0, 0))  # it died before its first beat...
    health.enter(place)  # ...and its successor in the same place starts
    assert not health.is_alive("worker")


def test_files_of_owners_gone_count_for_nothing_and_are_removed(directory: Path) -> None:
    stale = worker_file(directory, "worker-0", owner=gone_pid())
    health.enter(stale)
    os.utime(stale, (0, 0))
    live = worker_file(directory, "worker-0")
    assert not health.is_alive("worker")

    health.enter(live)
    assert health.is_alive("worker")
    assert not stale.exists()


def test_a_clean_stop_takes_the_file_away(directory: Path) -> None:
    place = worker_file(directory, "worker-0")
    health.enter(place)
    health.leave(place)
    assert not place.exists()
    assert not health.is_alive("worker")
