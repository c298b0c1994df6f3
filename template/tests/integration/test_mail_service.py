"""The mail service: renders into the outbox in the caller's transaction; the jobs deliver
through the variant's real provider once it commits."""

from email.utils import parseaddr

import pytest
from fastapi import BackgroundTasks, FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.resources import Resources
from app.models.outbox import OutboxMessage
from app.services.mail_service import MailService
from app.worker.broker import JobQueue
from tests.helpers import RecordedEmail
from tests.jobs import app_broker, jobs_using


@pytest.fixture
def tasks() -> BackgroundTasks:
    return BackgroundTasks()


def mail_service(app: FastAPI, tasks: BackgroundTasks, resources: Resources) -> MailService:
    return MailService(resources.settings, tasks, JobQueue(app_broker(app)).wake_outbox_relay)


@pytest.fixture
def mailer(app: FastAPI, tasks: BackgroundTasks, resources: Resources) -> MailService:
    return mail_service(app, tasks, resources)


async def test_nothing_is_sent_until_the_transaction_commits(
    mailer: MailService,
    tasks: BackgroundTasks,
    outbox: list[RecordedEmail],
    db_session: AsyncSession,
) -> None:
    mailer.send_welcome(db_session, "ada@example.com", "https://app.example.com/verify?token=w1")
    await tasks()  # the relay, woken before the commit, finds nothing
    assert outbox == []

    await db_session.commit()
    await tasks()

    [message] = outbox
    assert message.recipients == ["ada@example.com"]
    assert message.subject.startswith("Welcome to ")
    assert "https://app.example.com/verify?token=w1" in message.html
    assert message.text is not None
    assert "https://app.example.com/verify?token=w1" in message.text


async def test_a_rolled_back_transaction_sends_nothing_and_leaves_no_message(
    mailer: MailService,
    tasks: BackgroundTasks,
    outbox: list[RecordedEmail],
    db_session: AsyncSession,
) -> None:
    mailer.send_password_reset(db_session, "ada@example.com", "https://app.example.com/r?t=1")
    await db_session.rollback()
    await tasks()

    assert outbox == []
    assert await db_session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


async def test_verification_and_reset_emails_carry_the_link(
    mailer: MailService,
    tasks: BackgroundTasks,
    outbox: list[RecordedEmail],
    db_session: AsyncSession,
) -> None:
    mailer.send_verification(
        db_session, "ada@example.com", "https://app.example.com/verify?token=v1"
    )
    mailer.send_password_reset(
        db_session, "ada@example.com", "https://app.example.com/reset?token=r1"
    )
    await db_session.commit()
    await tasks()

    verify, reset = sorted(outbox, key=lambda message: message.subject)
    assert verify.subject == "Confirm your email address"
    assert "https://app.example.com/verify?token=v1" in verify.html
    assert verify.text is not None
    assert "https://app.example.com/verify?token=v1" in verify.text
    assert reset.subject == "Reset your password"
    assert reset.text is not None
    assert "https://app.example.com/reset?token=r1" in reset.text


async def test_the_sender_comes_from_the_settings(
    mailer: MailService,
    tasks: BackgroundTasks,
    outbox: list[RecordedEmail],
    resources: Resources,
    db_session: AsyncSession,
) -> None:
    mailer.send_account_exists(db_session, "ada@example.com")
    await db_session.commit()
    await tasks()

    [message] = outbox
    settings = resources.settings
    # The From header is RFC 5322: a name with "," or '"' is quoted, so compare it parsed.
    assert parseaddr(message.sender) == (settings.email_from_name, settings.email_from)


@pytest.mark.parametrize(
    "name",
    ['The "Best" Shop', "Acme, Inc.", 'Back\\slash "quoted"', "東京ショップ", "Сервис заказов"],
)
async def test_the_senders_name_arrives_as_written(
    app: FastAPI,
    mailer: MailService,
    tasks: BackgroundTasks,
    outbox: list[RecordedEmail],
    resources: Resources,
    db_session: AsyncSession,
    name: str,
) -> None:
    settings = resources.settings.model_copy(update={"email_from_name": name})
    with jobs_using(app, settings=settings):
        mailer.send_account_exists(db_session, "ada@example.com")
        await db_session.commit()
        await tasks()

    [message] = outbox
    assert parseaddr(message.sender) == (name, settings.email_from)
