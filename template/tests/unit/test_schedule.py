"""The schedule the `taskiq scheduler` process follows: taskiq's own scheduler reading
the jobs' `schedule` labels (LabelScheduleSource)."""

from taskiq import TaskiqScheduler
from taskiq.schedule_sources import LabelScheduleSource

from app.core.config import Settings
from app.worker.broker import (
    DELETE_ENDED_SESSIONS,
    DELIVER_EMAIL,
    PURGE_SENT_OUTBOX,
    RELAY_OUTBOX,
    SWEEP_ORPHANED_UPLOADS,
    create_broker,
    create_scheduler,
)
from app.worker.main import StandaloneScheduler


async def test_the_relay_and_every_maintenance_job_are_scheduled_at_their_intervals(
    settings: Settings,
) -> None:
    settings = settings.model_copy(
        update={"outbox_relay_interval_seconds": 7, "maintenance_interval_seconds": 600}
    )
    scheduler = create_scheduler(create_broker(settings))
    assert isinstance(scheduler, TaskiqScheduler)
    [source] = scheduler.sources
    assert isinstance(source, LabelScheduleSource)

    await source.startup()
    schedules = {task.task_name: task for task in await source.get_schedules()}

    assert {name: task.interval for name, task in schedules.items()} == {
        RELAY_OUTBOX: 7,
        DELETE_ENDED_SESSIONS: 600,
        SWEEP_ORPHANED_UPLOADS: 600,
        PURGE_SENT_OUTBOX: 600,
    }
    assert DELIVER_EMAIL not in schedules, "deliveries are sent by the relay, not the clock"
    # Stable ids: the scheduler keeps each schedule's last run by its id.
    assert {task.schedule_id for task in schedules.values()} == set(schedules)


def test_the_scheduler_process_uses_taskiqs_scheduler(settings: Settings) -> None:
    scheduler = create_scheduler(create_broker(settings), StandaloneScheduler)
    assert isinstance(scheduler, StandaloneScheduler)
    assert isinstance(scheduler, TaskiqScheduler)
