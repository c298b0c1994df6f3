"""The worker and scheduler processes, built from the environment:

    taskiq worker app.worker.main:broker --workers 1 --wait-tasks-timeout 25
    taskiq scheduler app.worker.main:scheduler

(`make worker` and `make scheduler` in development.) On SIGTERM the worker stops taking
jobs and waits up to --wait-tasks-timeout seconds for those in hand; a job cut short is
taken up again by another worker (unacknowledged) or handed out again by the outbox
relay once its lease ends. The scheduler stops at once: it holds no job.
"""

import asyncio
import errno
import os
import signal
from contextlib import AsyncExitStack, aclosing
from typing import Any

import anyio
import structlog
from prometheus_client import REGISTRY, start_http_server
from taskiq import AsyncBroker, TaskiqEvents, TaskiqScheduler, TaskiqState

from app.core.cache import create_cache
from app.core.config import Settings, get_settings
from app.core.database import create_engine, create_session_factory
from app.core.logging import configure_logging
from app.core.metrics import DATABASE_GAUGES
from app.email.factory import create_email_provider
from app.storage.factory import create_storage
from app.worker import health
from app.worker.broker import create_broker, create_scheduler, use_context
from app.worker.context import JobContext

logger = structlog.stdlib.get_logger(__name__)


def serve_metrics(port: int) -> None:
    """The process's Prometheus endpoint on `port`, unless the port is taken: then a
    warning, and the worker runs without one. Each process counts its own jobs, and one
    port serves one process: with `--workers N` > 1, or a second worker command on the
    machine, only the first to bind it is scraped (run `--workers 1` and scale by
    replicas, or give each command a WORKER_METRICS_PORT of its own). A worker that
    failed on a taken port was restarted by taskiq every second, for ever."""
    for gauge in DATABASE_GAUGES:
        # Read from the database by the web app's /metrics: never set here, they would
        # show an empty queue on a worker's endpoint.
        REGISTRY.unregister(gauge)
    try:
        start_http_server(port)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        logger.warning("worker_metrics_port_in_use", port=port, pid=os.getpid())


def create_worker_broker(settings: Settings) -> AsyncBroker:
    """The broker of a worker process: its jobs' resources open when it starts."""
    broker = create_broker(settings)
    stack = AsyncExitStack()

    @broker.on_event(TaskiqEvents.WORKER_STARTUP)
    async def start(state: TaskiqState) -> None:
        # Entered first: a process that dies starting up leaves its file to go stale.
        heartbeat_file = health.heartbeat_file("worker")
        health.enter(heartbeat_file)
        stack.callback(health.leave, heartbeat_file)
        configure_logging(settings)
        engine = create_engine(settings)
        stack.push_async_callback(engine.dispose)
        provider = await stack.enter_async_context(aclosing(create_email_provider(settings)))
        storage = await anyio.to_thread.run_sync(create_storage, settings)
        cache = create_cache(settings)
        stack.push_async_callback(cache.close)
        use_context(
            broker,
            JobContext(
                settings=settings,
                session_factory=create_session_factory(engine),
                email_provider=provider,
                storage=storage,
                cache=cache,
            ),
        )
        if settings.worker_metrics_port:
            serve_metrics(settings.worker_metrics_port)
        heartbeat = asyncio.create_task(health.beat(heartbeat_file))
        stack.callback(heartbeat.cancel)

    @broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
    async def stop(state: TaskiqState) -> None:
        await stack.aclose()

    return broker


class StandaloneScheduler(TaskiqScheduler):
    """The scheduler of the `taskiq scheduler` process: it touches its heartbeat file
    while it runs (its health check, `python -m app.worker.health scheduler`), and stops
    on SIGTERM as on Ctrl-C. taskiq's command handles only the latter, and a container's
    PID 1 ignores a signal it has no handler for: `docker stop` would wait out the grace
    period and kill it."""

    heartbeat: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        heartbeat_file = health.heartbeat_file("scheduler")
        health.enter(heartbeat_file)
        await super().startup()
        main = asyncio.current_task()  # the command's own: cancelled, it shuts down
        if main is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
        self.heartbeat = asyncio.create_task(health.beat(heartbeat_file))

    async def shutdown(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.cancel()
            health.leave(health.heartbeat_file("scheduler"))
        await super().shutdown()


def __getattr__(name: str) -> Any:
    """`broker` and `scheduler`, built on first access (PEP 562), as `app.main.app` is."""
    if name == "broker":
        globals()["broker"] = create_worker_broker(get_settings())
        return globals()["broker"]
    if name == "scheduler":
        scheduler = create_scheduler(__getattr__("broker"), StandaloneScheduler)
        globals()["scheduler"] = scheduler
        return scheduler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
