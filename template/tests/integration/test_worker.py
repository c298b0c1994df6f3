"""Real worker and scheduler processes (`taskiq worker`, `taskiq scheduler`) on Redis.

A worker killed with SIGKILL after the mail server took a message, before the outcome
was written: the relay hands the message out again once its lease ends, another worker
sends it again with the same idempotency key, and the redelivery is counted. Two
schedulers send every maintenance job twice to two workers, which run them at once:
each deletes exactly what it should. The job stream stays near its bound. Two workers
of one command share a metrics port and both keep running, and the health check sees
one of them hang.
"""

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import httpx
import pytest
from fastapi import BackgroundTasks
from pydantic import SecretStr
from sqlalchemy import select

from app.core.config import Settings
from app.core.redis_client import close_redis_client, create_redis_client
from app.core.resources import Resources
from app.models.auth_session import AuthSession
from app.models.base import utcnow
from app.models.outbox import OutboxMessage, OutboxStatus
from app.services.mail_service import MailService
from app.services.outbox_service import OutboxService
from app.worker.broker import RELAY_OUTBOX, create_broker
from tests.helpers import RecordedEmail, create_user, free_port

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"), reason="worker processes need Redis: set TEST_REDIS_URL"
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Generous: each process imports the service and connects before its first job.
DEADLINE_SECONDS = 40


def environment(settings: Settings) -> dict[str, str]:
    """`settings` as the environment variables a process of the service reads."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TEST_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list | dict):
            value = json.dumps(value)
        env[name.upper()] = str(value)
    return env


@pytest.fixture
async def worker_settings(resources: Resources) -> AsyncIterator[Settings]:
    """The test's database and mail server, jobs on a Redis stream of the test's own,
    leases of 2 s and a relay every second."""
    queue = f"test:{uuid.uuid4().hex}:jobs"
    settings = resources.settings.model_copy(
        update={
            "jobs_in_process": False,
            "jobs_queue": queue,
            "outbox_lease_seconds": 2,
            "outbox_relay_interval_seconds": 1,
            "worker_metrics_port": free_port(),
        }
    )
    yield settings
    redis = create_redis_client(os.environ["TEST_REDIS_URL"])
    for key in (queue, f"autoclaim:{queue}:{queue}"):  # in two slots of a Cluster
        await redis.delete(key)
    await close_redis_client(redis)


@pytest.fixture(autouse=True)
def heartbeats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory of the processes and of their health check (TMPDIR),
    where their heartbeat files are: the test's own."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setenv("TMPDIR", str(directory))
    return directory


@pytest.fixture
def log(tmp_path: Path) -> Iterator[BinaryIO]:
    """Where the processes' output goes: shown when a test gives up waiting."""
    with (tmp_path / "processes.log").open("w+b") as output:
        yield output


@asynccontextmanager
async def running(
    arguments: list[str], settings: Settings, log: BinaryIO
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A process of the service (in a process group of its own), stopped with SIGTERM."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskiq",
        *arguments,
        cwd=PROJECT_ROOT,
        env=environment(settings),
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 15)


def worker(settings: Settings, log: BinaryIO) -> Any:
    return running(["worker", "app.worker.main:broker", "--workers", "1"], settings, log)


def scheduler(settings: Settings, log: BinaryIO) -> Any:
    return running(["scheduler", "app.worker.main:scheduler"], settings, log)


async def wait_for(condition: Any, what: str, log: BinaryIO) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen in {DEADLINE_SECONDS} s:\n{tail(log)}")
        await asyncio.sleep(0.2)


def tail(log: BinaryIO) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-4000:]


class MailRecorder(Protocol):
    """The variant's recording mail server (`mail_recorder`: SMTP server or HTTP API)."""

    on_message: Callable[[RecordedEmail], None] | None


@pytest.fixture
def kill_on_first_message(mail_recorder: MailRecorder) -> Iterator[list[int]]:
    """Process groups to SIGKILL when the mail server takes its first message, before
    it answers: the sending worker dies between sending and recording it."""
    groups: list[int] = []

    def kill(_: RecordedEmail) -> None:
        while groups:
            os.killpg(groups.pop(), signal.SIGKILL)

    mail_recorder.on_message = kill
    yield groups
    mail_recorder.on_message = None


async def test_a_worker_killed_after_sending_leads_to_one_counted_redelivery(
    resources: Resources,
    worker_settings: Settings,
    outbox: list[RecordedEmail],
    kill_on_first_message: list[int],
    log: BinaryIO,
) -> None:
    async with resources.session_factory() as db:
        mailer = MailService(resources.settings, BackgroundTasks(), _nothing)
        mailer.send_welcome(db, "ada@example.com", "https://app.example.com/v?token=k")
        await db.commit()

    async def message() -> OutboxMessage:
        async with resources.session_factory() as db:
            return (await db.scalars(select(OutboxMessage))).one()

    async with scheduler(worker_settings, log):
        async with worker(worker_settings, log) as first:
            kill_on_first_message.append(first.pid)
            await wait_for(lambda: _done(first), "the first worker's death", log)
        unfinished = await message()
        assert (unfinished.status, unfinished.attempts, unfinished.failures) == (
            OutboxStatus.PENDING,
            1,
            0,
        ), "the killed attempt should be open: sent, never recorded"
        assert len(outbox) == 1

        async with worker(worker_settings, log) as second:

            async def sent() -> bool:
                return (await message()).status is OutboxStatus.SENT

            await wait_for(sent, "the redelivery", log)
            async with httpx.AsyncClient() as client:
                port = worker_settings.worker_metrics_port
                metrics = await client.get(f"http://127.0.0.1:{port}/metrics")
            assert second.returncode is None

    delivered = await message()
    assert (delivered.attempts, delivered.failures) == (2, 0)
    assert len(outbox) == 2, "at-least-once: the killed attempt's copy and the redelivery"
    keys = {copy.key for copy in outbox}
    assert len(keys) == 1, "both copies must carry the message's idempotency key"
    [key] = keys
    assert key is not None
    assert delivered.idempotency_key in key
    assert "outbox_uncertain_redeliveries_total 1.0" in metrics.text
    # The queue's gauges are the web app's to report (read from the database on a
    # scrape): a worker never sets them, and would show an empty queue.
    assert "outbox_pending_messages" not in metrics.text


async def test_two_schedulers_and_two_workers_run_maintenance_deleting_exactly_what_it_should(
    resources: Resources, worker_settings: Settings, log: BinaryIO
) -> None:
    """A scheduler sends every scheduled job when it starts: with two of them, each
    maintenance job reaches the two workers twice, and runs on both at once."""
    settings, now = resources.settings, utcnow()
    past = timedelta(days=settings.session_retention_days, hours=1)
    outbox_past = timedelta(days=settings.outbox_retention_days, hours=1)
    async with resources.session_factory() as db:
        user = await create_user(db, resources.password_hasher)
        sessions = {
            name: AuthSession(
                id=uuid.uuid4(),
                user_id=user.id,
                secret_hash="0" * 64,
                current_jti=uuid.uuid4().hex,
                last_used_at=now,
                expires_at=now + timedelta(days=10),
                revoked_at=revoked,
            )
            for name, revoked in (("active", None), ("revoked long ago", now - past))
        }
        db.add_all(sessions.values())
        outbox = OutboxService(settings)
        for subject, status, sent_at in (
            ("sent long ago", OutboxStatus.SENT, now - outbox_past),
            ("sent lately", OutboxStatus.SENT, now - timedelta(hours=1)),
            ("dead", OutboxStatus.DEAD, None),
        ):
            message = outbox.add(
                db,
                template="welcome",
                to_email="a@example.com",
                subject=subject,
                html_body="",
                text_body="",
            )
            message.status, message.sent_at = status, sent_at
        await db.commit()

    async def swept() -> bool:
        async with resources.session_factory() as db:
            left_sessions = set(await db.scalars(select(AuthSession.id)))
            left_messages = set(await db.scalars(select(OutboxMessage.subject)))
        return sessions["revoked long ago"].id not in left_sessions and (
            "sent long ago" not in left_messages
        )

    async with AsyncExitStack() as processes:
        for start in (worker, worker, scheduler, scheduler):
            # A metrics port of each worker's own, as replicas have.
            own = worker_settings.model_copy(update={"worker_metrics_port": free_port()})
            await processes.enter_async_context(start(own, log))
        await wait_for(swept, "the maintenance jobs", log)
        await asyncio.sleep(1)  # the second run of each, if still under way

    async with resources.session_factory() as db:
        left_sessions = set(await db.scalars(select(AuthSession.id)))
        left_messages = set(await db.scalars(select(OutboxMessage.subject)))
    assert left_sessions == {sessions["active"].id}
    assert left_messages == {"sent lately", "dead"}
    log.seek(0)
    output = log.read().decode(errors="replace")
    assert "Traceback" not in output, tail(log)


async def test_the_job_stream_is_trimmed_to_about_its_bound(worker_settings: Settings) -> None:
    """Acknowledged jobs stay in a Redis stream: each new one trims the oldest beyond
    JOBS_STREAM_MAX_LENGTH (approximately: Redis trims whole nodes of 100 entries)."""
    bound, sent = 100, 1000
    settings = worker_settings.model_copy(update={"jobs_stream_max_length": bound})
    broker = create_broker(settings)
    task = broker.find_task(RELAY_OUTBOX)
    assert task is not None
    await broker.startup()
    try:
        for _ in range(sent):
            await task.kiq()
    finally:
        await broker.shutdown()

    redis = create_redis_client(os.environ["TEST_REDIS_URL"])
    try:
        length = await redis.xlen(settings.jobs_queue)
    finally:
        await close_redis_client(redis)
    assert bound <= length <= bound + 200, f"{length} jobs kept of {sent} sent"


async def health_check(*process: str) -> int:
    """The exit status of `python -m app.worker.health [process]`."""
    check = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.worker.health", *process, cwd=PROJECT_ROOT
    )
    return await check.wait()


@pytest.mark.parametrize(
    ("name", "start", "check"),
    [("worker", worker, ()), ("scheduler", scheduler, ("scheduler",))],
)
async def test_a_process_reports_alive_while_it_runs_and_stops_on_sigterm(
    worker_settings: Settings,
    log: BinaryIO,
    heartbeats: Path,
    name: str,
    start: Callable[[Settings, BinaryIO], Any],
    check: tuple[str, ...],
) -> None:
    assert await health_check(*check) == 1, "no heartbeat yet"

    async def alive() -> bool:
        return await health_check(*check) == 0

    async with start(worker_settings, log) as process:
        await wait_for(alive, f"the {name}'s heartbeat", log)
        [heartbeat] = heartbeat_files(heartbeats, name)
        os.killpg(process.pid, signal.SIGSTOP)  # hung...
        os.utime(heartbeat, (0, 0))  # ...for as long as makes its heartbeat stale
        hung = await health_check(*check)
        os.killpg(process.pid, signal.SIGCONT)
        os.killpg(process.pid, signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 15)

    assert hung == 1
    assert code == 0, tail(log)
    assert await health_check(*check) == 1
    assert not heartbeat_files(heartbeats, name), "a process that stops takes its file away"


async def test_two_workers_on_one_metrics_port_both_run_and_each_is_checked(
    resources: Resources,
    worker_settings: Settings,
    outbox: list[RecordedEmail],
    log: BinaryIO,
    heartbeats: Path,
) -> None:
    """`--workers 2` with WORKER_METRICS_PORT set: the second process finds the port
    taken, warns and works on (it used to fail at start-up, restarted by taskiq every
    second for ever). Each process beats in a file of its own: one that hangs fails the
    health check while the other beats on (they used to share one file)."""

    def ready() -> dict[Path, int]:
        """Heartbeat files written by a beat (a process started up, metrics included)."""
        files = {path: path.read_text() for path in heartbeat_files(heartbeats, "worker")}
        return {path: int(pid) for path, pid in files.items() if pid}

    async def both_ready() -> bool:
        return len(ready()) == 2

    async def message() -> OutboxMessage:
        async with resources.session_factory() as db:
            return (await db.scalars(select(OutboxMessage))).one()

    async def sent() -> bool:
        return (await message()).status is OutboxStatus.SENT

    two = ["worker", "app.worker.main:broker", "--workers", "2"]
    async with running(two, worker_settings, log) as process, scheduler(worker_settings, log):
        await wait_for(both_ready, "both workers' start-up", log)
        async with resources.session_factory() as db:
            mailer = MailService(resources.settings, BackgroundTasks(), _nothing)
            mailer.send_welcome(db, "ada@example.com", "https://app.example.com/v?token=k")
            await db.commit()
        await wait_for(sent, "the mail's delivery", log)
        async with httpx.AsyncClient() as client:
            port = worker_settings.worker_metrics_port
            metrics = await client.get(f"http://127.0.0.1:{port}/metrics")
        await asyncio.sleep(3)  # taskiq looks for a dead worker every second
        assert process.returncode is None
        assert await health_check() == 0

        (hung, hung_pid), (beating, _) = sorted(ready().items())
        os.kill(hung_pid, signal.SIGSTOP)
        try:
            os.utime(hung, (0, 0))  # as it stands once hung for long enough
            stopped = time.time()

            async def beat_since() -> bool:
                return beating.stat().st_mtime > stopped

            await wait_for(beat_since, "the other worker's next beat", log)
            with_one_hung = await health_check()
        finally:
            os.kill(hung_pid, signal.SIGCONT)
        output = tail_all(log)  # before SIGTERM: a worker that stops first is restarted

    assert metrics.status_code == 200
    assert len(outbox) == 1
    assert "is dead" not in output, output[-4000:]
    assert "restarted" not in output, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert output.count("worker_metrics_port_in_use") == 1
    assert with_one_hung == 1, "a hung worker beside a beating one must fail the check"


def heartbeat_files(directory: Path, name: str) -> list[Path]:
    return list(directory.glob(f"{name}.*.heartbeat"))


def tail_all(log: BinaryIO) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")


async def test_the_health_check_names_the_processes_it_knows() -> None:
    assert await health_check("web") == 2


async def _done(process: asyncio.subprocess.Process) -> bool:
    return process.returncode is not None


async def _nothing() -> None:
    """No relay to wake: the scheduler's finds the message."""
