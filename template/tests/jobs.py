"""The app's background jobs in the tests: run in process, synchronously, when a test says."""

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Any, cast

from fastapi import FastAPI
from taskiq import AsyncBroker

from app.email.base import EmailProvider
from app.worker.broker import RELAY_OUTBOX, JobQueue, job_context, use_context
from app.worker.context import JobContext


def app_broker(app: FastAPI) -> AsyncBroker:
    return cast(JobQueue, app.state.jobs).broker


def app_job_context(app: FastAPI) -> JobContext:
    return job_context(app_broker(app).state)


async def run_relay(app: FastAPI) -> None:
    """One run of the scheduled outbox relay, and of the deliveries it hands out."""
    task = app_broker(app).find_task(RELAY_OUTBOX)
    assert task is not None
    await task.kiq()


@contextmanager
def jobs_using(app: FastAPI, **changes: Any) -> Iterator[JobContext]:
    """The app's jobs work with `changes` to their context (`email_provider=...`,
    `settings=...`) meanwhile."""
    broker, context = app_broker(app), app_job_context(app)
    changed = replace(context, **changes)
    use_context(broker, changed)
    try:
        yield changed
    finally:
        use_context(broker, context)


def jobs_sending_through(
    app: FastAPI, provider: EmailProvider
) -> AbstractContextManager[JobContext]:
    """The app's email jobs deliver through `provider` meanwhile."""
    return jobs_using(app, email_provider=provider)
