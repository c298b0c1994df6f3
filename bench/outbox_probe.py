"""Run inside a rendered service (its .venv, its directory): prints the outbox figures as JSON.

    python outbox_probe.py DATABASE_URL REDIS_URL MESSAGES WORKERS SAMPLES

1. The added cost of the outbox write on registration: the median and p95 time of a
   transaction that inserts a user, against one that inserts a user and the rendered
   welcome message (what POST /auth/register now commits), on PostgreSQL.
2. Throughput: MESSAGES outbox messages, handed out by the relay to WORKERS real
   `taskiq worker` processes on Redis, delivered over SMTP to a local sink (aiosmtpd),
   timed from the first hand-out until the last message is marked sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid

from aiosmtpd.controller import Controller
from app.core.config import Settings
from app.core.database import create_session_factory
from app.email.rendering import render_email
from app.models import Base, OutboxMessage, User
from app.models.outbox import OutboxStatus
from app.services.outbox_service import OutboxService
from app.worker.broker import RELAY_OUTBOX, create_broker
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import create_async_engine


class Sink:
    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.received += 1
        return "250 OK"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def write_cost(settings: Settings, samples: int) -> dict[str, float]:
    engine = create_async_engine(settings.database_url)
    sessions = create_session_factory(engine)
    outbox = OutboxService(settings)
    timings: dict[str, list[float]] = {"user": [], "user+outbox": []}
    for round_ in range(samples):
        for kind in timings:
            async with sessions() as db:
                started = time.perf_counter()
                email = f"bench-{uuid.uuid4().hex}@example.com"
                db.add(User(email=email, hashed_password="x" * 60, is_verified=False))
                if kind == "user+outbox":
                    rendered = render_email(
                        "welcome", product_name="Bench", link=f"https://x/v?token={round_}"
                    )
                    outbox.add(
                        db,
                        template="welcome",
                        to_email=email,
                        subject="Welcome",
                        html_body=rendered.html,
                        text_body=rendered.text,
                    )
                await db.commit()
                timings[kind].append((time.perf_counter() - started) * 1000)
    await engine.dispose()
    median = {kind: statistics.median(values) for kind, values in timings.items()}
    return {
        "user_median_ms": median["user"],
        "user_outbox_median_ms": median["user+outbox"],
        "user_p95_ms": percentile(timings["user"], 0.95),
        "user_outbox_p95_ms": percentile(timings["user+outbox"], 0.95),
        "added_median_ms": median["user+outbox"] - median["user"],
    }


async def throughput(settings: Settings, messages: int, workers: int) -> dict[str, float]:
    engine = create_async_engine(settings.database_url)
    sessions = create_session_factory(engine)
    outbox = OutboxService(settings)
    async with sessions() as db:
        # Only these messages: not the ones the write-cost rounds left behind.
        await db.execute(delete(OutboxMessage))
        for number in range(messages):
            outbox.add(
                db,
                template="welcome",
                to_email=f"user{number}@example.com",
                subject="Welcome",
                html_body="<p>Hello</p>",
                text_body="Hello",
            )
        await db.commit()
    env = {
        **os.environ,
        **{name.upper(): str(value) for name, value in settings_env(settings).items()},
    }
    log = open(os.environ.get("BENCH_WORKER_LOG", os.devnull), "ab")  # noqa: SIM115
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "taskiq", "worker", "app.worker.main:broker", "--workers", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(workers)
    ]
    broker = create_broker(settings)
    await broker.startup()
    try:
        await asyncio.sleep(4)  # the workers import the service and join the group
        relay = broker.find_task(RELAY_OUTBOX)
        assert relay is not None
        started = time.perf_counter()
        next_relay = 0.0
        while True:
            if time.perf_counter() >= next_relay:  # as the scheduler does, once a second
                await relay.kiq()
                next_relay = time.perf_counter() + 1
            async with sessions() as db:
                sent = await db.scalar(
                    select(func.count()).where(OutboxMessage.status == OutboxStatus.SENT)
                )
            if sent == messages:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        await broker.shutdown()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        await engine.dispose()
    return {
        "messages": messages,
        "workers": workers,
        "seconds": elapsed,
        "per_second": messages / elapsed,
    }


def settings_env(settings: Settings) -> dict[str, object]:
    return {
        "database_url": settings.database_url,
        "redis_url": settings.redis_url,
        "jobs_queue": settings.jobs_queue,
        "smtp_host": "127.0.0.1",
        "smtp_port": settings.smtp_port,  # type: ignore[attr-defined]
        "smtp_security": "none",
        "outbox_relay_batch_size": settings.outbox_relay_batch_size,
        "worker_metrics_port": 0,
        "secret_key": settings.secret_key.get_secret_value(),
        "log_level": "WARNING",
    }


async def main() -> None:
    server_url, redis_url, messages, workers, samples = sys.argv[1:6]
    name = f"bench_outbox_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    database_url = server_url.rsplit("/", 1)[0] + f"/{name}"
    sink = Sink()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # server_hostname: the default looks up this machine's FQDN on every connection, slowly.
    controller = Controller(sink, hostname="127.0.0.1", port=port, server_hostname="localhost")
    controller.start()
    try:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=database_url,
            redis_url=redis_url,
            jobs_queue=f"bench:{uuid.uuid4().hex}:jobs",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            outbox_relay_batch_size=1000,
            secret_key="bench-" + uuid.uuid4().hex * 2,
        )
        engine = create_async_engine(database_url)
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        await engine.dispose()
        cost = await write_cost(settings, int(samples))
        flow = await throughput(settings, int(messages), int(workers))
        flow["sink_received"] = sink.received
        print(json.dumps({"register_write": cost, "throughput": flow}))
    finally:
        controller.stop()
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


if __name__ == "__main__":
    asyncio.run(main())
