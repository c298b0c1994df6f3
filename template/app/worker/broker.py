"""The taskiq wiring: the broker, the registered jobs and their schedule.

With Redis (REDIS_URL set, JOBS_IN_PROCESS off) jobs travel on a Redis stream, read
by a consumer group: a job is acknowledged once it has run, and one left unacknowledged
by a worker that died is claimed by another after OUTBOX_LEASE_SECONDS. Without Redis
the in-memory broker runs each job at once in the process that sends it, through the
same code (development and tests).
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import RedisClusterException, RedisError
from taskiq import AsyncBroker, InMemoryBroker, TaskiqDepends, TaskiqScheduler, TaskiqState
from taskiq.api import run_scheduler_task
from taskiq.schedule_sources import LabelScheduleSource
from taskiq_redis import RedisStreamBroker, RedisStreamClusterBroker, RedisStreamSentinelBroker

from app.core.config import Settings
from app.core.redis_client import parse_redis_url
from app.models.outbox import OutboxStatus
from app.services.outbox_service import Handout
from app.worker import jobs
from app.worker.context import JobContext

RELAY_OUTBOX = "outbox.relay"
DELIVER_EMAIL = "outbox.deliver"
DELETE_ENDED_SESSIONS = "maintenance.sessions"
SWEEP_ORPHANED_UPLOADS = "maintenance.uploads"
PURGE_SENT_OUTBOX = "maintenance.outbox"

logger = structlog.stdlib.get_logger(__name__)


def runs_in_process(settings: Settings) -> bool:
    """Whether jobs run in the process that sends them (no Redis, or JOBS_IN_PROCESS)."""
    return settings.jobs_in_process or settings.redis_url is None


def create_broker(settings: Settings) -> AsyncBroker:
    """The broker with every job registered (and scheduled) on it."""
    broker: AsyncBroker
    if settings.jobs_in_process or settings.redis_url is None:
        # Awaited where it is sent: after a response (a background task), or in a test.
        broker = InMemoryBroker(await_inplace=True)
    else:
        broker = _stream_broker(settings, settings.redis_url)

    async def relay_outbox(state: TaskiqState = TaskiqDepends()) -> int:
        async def enqueue(handout: Handout) -> None:
            await deliver.kiq(str(handout.message_id), handout.attempt)

        return await jobs.relay_outbox(job_context(state), enqueue)

    async def deliver_email(
        message_id: str, attempt: int, state: TaskiqState = TaskiqDepends()
    ) -> str | None:
        handout = Handout(uuid.UUID(message_id), attempt)
        status: OutboxStatus | None = await jobs.deliver_email(job_context(state), handout)
        return None if status is None else status.value

    # The schedule is taskiq's own: `schedule` labels, read by the scheduler's
    # LabelScheduleSource (`create_scheduler`). A schedule runs once when the scheduler
    # starts, then every `interval` seconds.
    broker.register_task(
        relay_outbox,
        task_name=RELAY_OUTBOX,
        schedule=[
            {"interval": settings.outbox_relay_interval_seconds, "schedule_id": RELAY_OUTBOX}
        ],
    )
    deliver = broker.register_task(deliver_email, task_name=DELIVER_EMAIL)

    for name, job in (
        (DELETE_ENDED_SESSIONS, jobs.delete_ended_sessions),
        (SWEEP_ORPHANED_UPLOADS, jobs.sweep_orphaned_uploads),
        (PURGE_SENT_OUTBOX, jobs.purge_sent_outbox),
    ):
        broker.register_task(
            _in_context(job),
            task_name=name,
            schedule=[{"interval": settings.maintenance_interval_seconds, "schedule_id": name}],
        )
    return broker


def _stream_broker(settings: Settings, redis_url: str) -> AsyncBroker:
    """A broker on a Redis stream of the Redis that REDIS_URL names: one server, a
    Sentinel group's primary or a Cluster (`app.core.redis_client`).

    On one server a job that a dead worker left unacknowledged goes to another after
    OUTBOX_LEASE_SECONDS. taskiq's Sentinel and Cluster stream brokers do not claim such
    jobs; the outbox hands the message out again once its lease ends, so no email is lost
    on those either (README.md, "Background work")."""
    target = parse_redis_url(redis_url)
    queue, username, password = settings.jobs_queue, target.username, target.password
    # XACK does not delete a job: each XADD trims the stream to about JOBS_STREAM_MAX_LENGTH
    # (approximately: whole nodes, cheap). A job trimmed before it was read is handed out
    # again by the outbox lease, or sent again by the schedule (app/core/config.py).
    maxlen = settings.jobs_stream_max_length
    if target.topology == "sentinel":
        return RedisStreamSentinelBroker(
            list(target.nodes),
            target.service_name,
            queue_name=queue,
            consumer_group_name=queue,
            maxlen=maxlen,
            approximate=True,
            sentinel_kwargs={"username": username, "password": password},
            username=username,
            password=password,
        )
    if target.topology == "cluster":
        host, port = target.nodes[0]
        return RedisStreamClusterBroker(
            f"redis://{host}:{port}",
            queue_name=queue,
            consumer_group_name=queue,
            maxlen=maxlen,
            approximate=True,
            startup_nodes=[ClusterNode(node, node_port) for node, node_port in target.nodes],
            username=username,
            password=password,
        )
    return RedisStreamBroker(
        redis_url,
        queue_name=queue,
        consumer_group_name=queue,
        maxlen=maxlen,
        approximate=True,
        # A job a dead worker left unacknowledged goes to another after this long.
        idle_timeout=settings.outbox_lease_seconds * 1000,
        unacknowledged_lock_timeout=settings.outbox_lease_seconds,
    )


def _in_context(job: Callable[[JobContext], Awaitable[int]]) -> Callable[..., Awaitable[int]]:
    """`job` as a task: its context from the broker's state."""

    async def task(state: TaskiqState = TaskiqDepends()) -> int:
        return await job(job_context(state))

    return task


def create_scheduler(
    broker: AsyncBroker, scheduler_class: type[TaskiqScheduler] = TaskiqScheduler
) -> TaskiqScheduler:
    """Sends each scheduled job at its interval (`taskiq scheduler`; one is enough, and
    a second only runs the jobs more often: each is safe to run concurrently)."""
    return scheduler_class(broker, sources=[LabelScheduleSource(broker)])


def job_context(state: TaskiqState) -> JobContext:
    context: Any = getattr(state, "jobs", None)
    if not isinstance(context, JobContext):
        raise RuntimeError("the broker's state has no JobContext: start it with use_context()")
    return context


def use_context(broker: AsyncBroker, context: JobContext) -> None:
    """What the jobs run by `broker` in this process work with."""
    broker.state.jobs = context


class JobQueue:
    """The web side of the broker: wakes the relay after a commit wrote to the outbox."""

    def __init__(self, broker: AsyncBroker) -> None:
        self.broker = broker

    async def wake_outbox_relay(self) -> None:
        """Hand out due messages now rather than at the next scheduled relay. A failure
        to send the job is logged, not raised: the schedule covers it."""
        task = self.broker.find_task(RELAY_OUTBOX)
        if task is None:  # pragma: no cover - registered by create_broker
            raise RuntimeError(f"{RELAY_OUTBOX} is not registered")
        try:
            await task.kiq()
        except Exception:
            logger.exception("outbox_relay_wake_failed")


async def _start_sending(broker: AsyncBroker) -> None:
    """Start the sending side of a Redis broker, which also declares the stream's
    consumer group. Redis may be down or failing over while a replica starts: the replica
    starts anyway (its requests answer 503 until Redis is back), since the workers
    declare the group too, and a job sent before it exists is handed out again by the
    outbox lease."""
    try:
        await broker.startup()
    except (RedisError, RedisClusterException) as error:
        logger.warning("job_queue_unavailable_at_start", error=type(error).__name__)


@asynccontextmanager
async def open_job_queue(context: JobContext) -> AsyncIterator[JobQueue]:
    """The web process's side of the jobs, for as long as the app runs.

    With Redis it only sends jobs (the worker processes run them). In process it also
    runs them, with `context`, and runs the schedule too, except under test, where the
    suite runs each job itself when it chooses.
    """
    settings = context.settings
    broker = create_broker(settings)
    in_process = runs_in_process(settings)
    if in_process:
        use_context(broker, context)
        await broker.startup()
    else:
        await _start_sending(broker)
    schedule: asyncio.Task[None] | None = None
    if in_process and settings.environment != "test":
        schedule = asyncio.create_task(run_scheduler_task(create_scheduler(broker)))
    try:
        yield JobQueue(broker)
    finally:
        if schedule is not None:
            schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await schedule
        await broker.shutdown()
