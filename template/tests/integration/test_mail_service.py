"""The mail service: renders, schedules and delivers through the variant's real provider."""

from email.utils import parseaddr

import pytest
from fastapi import BackgroundTasks

from app.core.resources import Resources
from app.email.base import EmailProvider
from app.services.mail_service import MailService
from tests.helpers import RecordedEmail


@pytest.fixture
def tasks() -> BackgroundTasks:
    return BackgroundTasks()


@pytest.fixture
def mailer(
    app_email_provider: EmailProvider, tasks: BackgroundTasks, resources: Resources
) -> MailService:
    return MailService(app_email_provider, tasks, resources.settings)


async def test_nothing_is_sent_until_the_scheduled_tasks_run(
    mailer: MailService, tasks: BackgroundTasks, outbox: list[RecordedEmail]
) -> None:
    mailer.send_welcome("ada@example.com", "https://app.example.com/verify?token=w1")

    assert outbox == []
    await tasks()
    [message] = outbox
    assert message.recipients == ["ada@example.com"]
    assert message.subject.startswith("Welcome to ")
    assert "https://app.example.com/verify?token=w1" in message.html
    assert message.text is not None
    assert "https://app.example.com/verify?token=w1" in message.text


async def test_verification_and_reset_emails_carry_the_link(
    mailer: MailService, tasks: BackgroundTasks, outbox: list[RecordedEmail]
) -> None:
    mailer.send_verification("ada@example.com", "https://app.example.com/verify?token=v1")
    mailer.send_password_reset("ada@example.com", "https://app.example.com/reset?token=r1")
    await tasks()

    verify, reset = outbox
    assert verify.subject == "Confirm your email address"
    assert "https://app.example.com/verify?token=v1" in verify.html
    assert verify.text is not None
    assert "https://app.example.com/verify?token=v1" in verify.text
    assert reset.subject == "Reset your password"
    assert reset.text is not None
    assert "https://app.example.com/reset?token=r1" in reset.text


async def test_the_sender_comes_from_the_settings(
    mailer: MailService, tasks: BackgroundTasks, outbox: list[RecordedEmail], resources: Resources
) -> None:
    mailer.send_account_exists("ada@example.com")
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
    app_email_provider: EmailProvider,
    tasks: BackgroundTasks,
    outbox: list[RecordedEmail],
    resources: Resources,
    name: str,
) -> None:
    settings = resources.settings.model_copy(update={"email_from_name": name})
    MailService(app_email_provider, tasks, settings).send_account_exists("ada@example.com")
    await tasks()

    [message] = outbox
    assert parseaddr(message.sender) == (name, settings.email_from)
