"""The email outbox end to end, jobs run in process: exactly-once hand-out, retries with
backoff while the mail server is down, dead letters and the operator's retry."""

import asyncio
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta

import anyio
import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli import main
from app.core.resources import Resources
from app.email.base import EmailProvider
from app.main import create_app
from app.models.base import utcnow
from app.models.outbox import OutboxMessage, OutboxStatus
from app.services import one_time_tokens
from app.services.mail_service import MailService
from app.services.one_time_tokens import TokenPurpose
from app.services.outbox_service import (
    EXPIRED_ERROR,
    LINK_DEAD_ERROR,
    LINK_MARGIN,
    UNFINISHED_ATTEMPTS_ERROR,
    Handout,
    OutboxService,
    Sender,
    backoff_seconds,
)
from app.worker.broker import JobQueue
from app.worker.context import JobContext
from tests.helpers import API, DEFAULT_PASSWORD, RecordedEmail, free_port, unique_email
from tests.jobs import app_broker, app_job_context, jobs_sending_through, jobs_using, run_relay


@pytest.fixture
def tasks() -> BackgroundTasks:
    return BackgroundTasks()


@pytest.fixture
def mailer(app: FastAPI, tasks: BackgroundTasks, resources: Resources) -> MailService:
    return MailService(resources.settings, tasks, JobQueue(app_broker(app)).wake_outbox_relay)


@pytest.fixture
def fast_retries(app: FastAPI, resources: Resources) -> Iterator[None]:
    """Retries due within 50 ms, three attempts in all."""
    with retrying_quickly(app, resources, outbox_max_attempts=3):
        yield


def retrying_quickly(
    app: FastAPI, resources: Resources, **settings: object
) -> AbstractContextManager[JobContext]:
    """The app's jobs retry within 50 ms meanwhile; `settings` change others too."""
    quick = {"outbox_retry_base_seconds": 0.05, "outbox_retry_max_seconds": 0.05}
    return jobs_using(app, settings=resources.settings.model_copy(update=quick | settings))


async def only_message(db: AsyncSession) -> OutboxMessage:
    [message] = (
        await db.scalars(select(OutboxMessage).execution_options(populate_existing=True))
    ).all()
    return message


async def relay_when_due(app: FastAPI) -> None:
    """The relay, after the backoff of `fast_retries` has passed."""
    await asyncio.sleep(0.1)
    await run_relay(app)


async def test_a_committed_message_is_sent_once_and_its_bodies_erased(
    app: FastAPI,
    mailer: MailService,
    tasks: BackgroundTasks,
    outbox: list[RecordedEmail],
    db_session: AsyncSession,
) -> None:
    mailer.send_welcome(db_session, "ada@example.com", "https://app.example.com/v?token=1")
    await db_session.commit()

    await tasks()
    await run_relay(app)  # the scheduled relay, later: nothing is due any more

    [sent] = outbox
    message = await only_message(db_session)
    assert message.status is OutboxStatus.SENT
    assert (message.attempts, message.failures) == (1, 0)
    assert message.html_body == message.text_body == "", "the link must not outlive the send"
    assert sent.key is not None
    assert message.idempotency_key in sent.key


async def test_a_late_or_repeated_job_for_an_attempt_already_made_sends_nothing(
    app: FastAPI, mailer: MailService, outbox: list[RecordedEmail], db_session: AsyncSession
) -> None:
    """What a worker sees when the queue delivers a job twice (at-least-once queues do)."""
    mailer.send_verification(db_session, "ada@example.com", "https://app.example.com/v?token=2")
    await db_session.commit()
    message = await only_message(db_session)
    context = app_job_context(app)
    handout = Handout(message.id, 0)

    first, again = [
        await context.outbox.deliver(
            context.session_factory, context.email_provider, context.sender, handout, context.cache
        )
        for _ in range(2)
    ]

    assert (first, again) == (OutboxStatus.SENT, None)
    assert len(outbox) == 1


async def test_relays_running_at_once_hand_out_each_message_once(
    mailer: MailService, db_session: AsyncSession, resources: Resources
) -> None:
    for number in range(30):
        mailer.send_account_exists(db_session, f"user{number}@example.com")
    await db_session.commit()
    service = OutboxService(resources.settings)

    async def relay() -> list[Handout]:
        async with resources.session_factory() as db:
            return await service.hand_out(db, limit=20)

    first, second = await asyncio.gather(relay(), relay())
    # A relay whose rows the other claimed while it waited on their locks hands out
    # fewer than its limit; the next run hands out the rest.
    later = await relay()

    handed = [handout.message_id for handout in first + second + later]
    assert len(set(handed)) == len(handed), "a message was handed to two workers"
    assert len(handed) == 30
    assert len(first) + len(second) >= 20


async def test_relays_ending_expired_links_at_once_end_each_once(
    mailer: MailService, db_session: AsyncSession, resources: Resources
) -> None:
    """On PostgreSQL two relays updating the same expired rows in different orders
    deadlocked; each now skips the rows the other holds, and counts after committing."""
    for number in range(60):
        mailer.send_password_reset(db_session, f"u{number}@example.com", "https://x.example/r")
    await db_session.commit()
    await db_session.execute(update(OutboxMessage).values(expires_at=utcnow()))
    await db_session.commit()
    service = OutboxService(resources.settings)
    expired_before = _outcomes("expired")

    async def relay() -> list[Handout]:
        async with resources.session_factory() as db:
            return await service.hand_out(db, limit=25)

    for _ in range(2):
        handed = await asyncio.gather(relay(), relay(), relay())
        assert [*handed[0], *handed[1], *handed[2]] == [], "an expired link was handed out"

    statuses = set(await db_session.scalars(select(OutboxMessage.status)))
    assert statuses == {OutboxStatus.EXPIRED}
    assert _outcomes("expired") == expired_before + 60


def _outcomes(outcome: str) -> float:
    return REGISTRY.get_sample_value("outbox_deliveries_total", {"outcome": outcome}) or 0.0


@pytest.mark.usefixtures("fast_retries")
async def test_a_mail_server_down_for_a_while_gets_the_message_when_it_returns(
    app: FastAPI,
    mailer: MailService,
    tasks: BackgroundTasks,
    outbox: list[RecordedEmail],
    db_session: AsyncSession,
    unreachable_email_provider: EmailProvider,
) -> None:
    mailer.send_password_reset(db_session, "ada@example.com", "https://app.example.com/r?t=3")
    await db_session.commit()
    with jobs_sending_through(app, unreachable_email_provider):
        await tasks()
        await relay_when_due(app)

    failed = await only_message(db_session)
    assert failed.status is OutboxStatus.PENDING
    assert (failed.attempts, failed.failures) == (2, 2)
    assert failed.last_error is not None
    assert "127.0.0.1" in failed.last_error, "the error should say where delivery failed"

    await relay_when_due(app)  # the server is back

    [sent] = outbox
    assert sent.recipients == ["ada@example.com"]
    message = await only_message(db_session)
    assert (message.status, message.attempts, message.failures) == (OutboxStatus.SENT, 3, 2)


async def test_a_failure_waits_a_backoff_before_the_next_attempt(
    app: FastAPI,
    mailer: MailService,
    tasks: BackgroundTasks,
    db_session: AsyncSession,
    resources: Resources,
    unreachable_email_provider: EmailProvider,
) -> None:
    mailer.send_account_exists(db_session, "ada@example.com")
    await db_session.commit()
    before = utcnow()
    with jobs_sending_through(app, unreachable_email_provider):
        await tasks()
        await run_relay(app)  # not due yet: nothing is attempted

    message = await only_message(db_session)
    assert message.attempts == 1
    wait = message.next_attempt_at - before
    assert (
        timedelta(0) <= wait <= timedelta(seconds=resources.settings.outbox_retry_base_seconds + 5)
    )


@pytest.mark.usefixtures("fast_retries")
async def test_past_the_retry_budget_a_message_is_dead_until_an_operator_retries_it(
    app: FastAPI,
    mailer: MailService,
    tasks: BackgroundTasks,
    outbox: list[RecordedEmail],
    db_session: AsyncSession,
    resources: Resources,
    unreachable_email_provider: EmailProvider,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mailer.send_welcome(db_session, "ada@example.com", "https://app.example.com/v?token=4")
    await db_session.commit()
    with jobs_sending_through(app, unreachable_email_provider):
        await tasks()
        for _ in range(3):
            await relay_when_due(app)

    dead = await only_message(db_session)
    assert (dead.status, dead.attempts) == (OutboxStatus.DEAD, 3)
    await relay_when_due(app)
    assert outbox == [], "a dead message must wait for an operator"

    settings = resources.settings
    assert await anyio.to_thread.run_sync(main, ["outbox", "status"], settings) == 0
    assert "dead: 1" in capsys.readouterr().out
    assert await anyio.to_thread.run_sync(main, ["outbox", "dead"], settings) == 0
    listing = capsys.readouterr().out
    assert str(dead.id) in listing
    assert "127.0.0.1" in listing, "the listing should show the last error"

    assert await anyio.to_thread.run_sync(main, ["outbox", "retry", str(dead.id)], settings) == 0
    assert "1 dead message(s) queued again" in capsys.readouterr().out
    await run_relay(app)

    [sent] = outbox
    assert sent.recipients == ["ada@example.com"]
    assert (await only_message(db_session)).status is OutboxStatus.SENT


async def test_a_refusal_for_now_is_retried_and_one_for_good_is_dead_at_once(
    app: FastAPI,
    mailer: MailService,
    tasks: BackgroundTasks,
    outbox: list[RecordedEmail],
    db_session: AsyncSession,
    resources: Resources,
    refuse_recipients: Callable[[bool | None], None],
) -> None:
    """RFC 5321 4.2.1: a 4yz reply is worth another attempt, a 5yz one is the answer every
    attempt will get (an HTTP API: 503 against 400). A message refused for good is dead
    after that attempt, its retry budget unspent."""
    mailer.send_welcome(db_session, "ada@example.com", "https://app.example.com/v?token=7")
    await db_session.commit()
    dead_before = dead_outcomes()
    with retrying_quickly(app, resources) as context:
        assert context.settings.outbox_max_attempts > 3
        refuse_recipients(False)
        await tasks()
        await relay_when_due(app)
        refused_for_now = await only_message(db_session)
        assert (refused_for_now.status, refused_for_now.attempts) == (OutboxStatus.PENDING, 2)

        refuse_recipients(True)
        await relay_when_due(app)
        dead = await only_message(db_session)
        assert (dead.status, dead.attempts, dead.failures) == (OutboxStatus.DEAD, 3, 3)
        assert dead_outcomes() == dead_before + 1

        await relay_when_due(app)
    assert (await only_message(db_session)).attempts == 3, "a dead message waits for an operator"
    assert outbox == []


async def test_a_message_whose_link_expires_while_it_waits_is_expired_and_never_sent(
    app: FastAPI,
    mailer: MailService,
    tasks: BackgroundTasks,
    outbox: list[RecordedEmail],
    db_session: AsyncSession,
    resources: Resources,
    unreachable_email_provider: EmailProvider,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A reset link lives PASSWORD_RESET_TTL_MINUTES; the retries can outlast it. Sent
    late, the message would only hand the user a link that no longer works."""
    mailer.send_password_reset(db_session, "ada@example.com", "https://app.example.com/r?t=8")
    await db_session.commit()
    waiting = await only_message(db_session)
    assert waiting.expires_at is not None
    link_life = timedelta(minutes=resources.settings.password_reset_ttl_minutes)
    assert abs(waiting.expires_at - (waiting.created_at + link_life)) < timedelta(seconds=5)
    with jobs_sending_through(app, unreachable_email_provider):
        await tasks()  # the first attempt fails
    async with resources.session_factory() as db:  # the link's life ends before the retry
        past = utcnow() - timedelta(seconds=1)
        await db.execute(update(OutboxMessage).values(expires_at=past, next_attempt_at=past))
        await db.commit()

    await run_relay(app)  # the mail server works again

    expired = await only_message(db_session)
    assert (expired.status, expired.last_error) == (OutboxStatus.EXPIRED, EXPIRED_ERROR)
    assert expired.html_body == expired.text_body == "", "a dead link is of no use to keep"
    settings = resources.settings
    assert await anyio.to_thread.run_sync(main, ["outbox", "retry", "--all"], settings) == 0
    assert "0 dead message(s) queued again" in capsys.readouterr().out
    retry = ["outbox", "retry", str(expired.id)]
    assert await anyio.to_thread.run_sync(main, retry, settings) == 1
    await run_relay(app)
    assert outbox == []


async def test_a_link_with_less_than_the_margin_left_is_not_started(
    app: FastAPI, mailer: MailService, outbox: list[RecordedEmail], db_session: AsyncSession
) -> None:
    """A send may take the provider's timeouts (SMTP: one per command): a message started
    in its link's last seconds would arrive with a dead link."""
    mailer.send_password_reset(db_session, "ada@example.com", "https://app.example.com/r?t=10")
    await db_session.commit()
    await db_session.execute(
        update(OutboxMessage).values(expires_at=utcnow() + LINK_MARGIN - timedelta(seconds=5))
    )
    await db_session.commit()

    await run_relay(app)

    assert (await only_message(db_session)).status is OutboxStatus.EXPIRED
    assert outbox == []


async def test_a_message_whose_token_stopped_working_is_never_sent(
    app: FastAPI,
    mailer: MailService,
    tasks: BackgroundTasks,
    outbox: list[RecordedEmail],
    db_session: AsyncSession,
    resources: Resources,
    refuse_recipients: Callable[[bool | None], None],
) -> None:
    """A user asks twice for a reset while the mail server refuses for now: once it is
    back, only the newer link goes out (issuing it ended the older token, whatever order
    the two messages were written in). A link revoked meanwhile (every session ended, a
    password changed) is not sent either; a link of another purpose is untouched."""
    cache = resources.cache
    ada, bob = uuid.uuid4(), uuid.uuid4()

    async def issue_reset(user_id: uuid.UUID) -> str:
        return await one_time_tokens.issue(cache, TokenPurpose.RESET_PASSWORD, user_id, 600)

    def send_reset(to_email: str, token: str) -> None:
        mailer.send_password_reset(db_session, to_email, f"https://x.example/r?t={token}", token)

    with retrying_quickly(app, resources):
        refuse_recipients(False)
        older, newer = await issue_reset(ada), await issue_reset(ada)
        send_reset("ada@example.com", newer)  # written in the other order, as two requests
        send_reset("ada@example.com", older)  # that commit out of order would write them
        revoked = await issue_reset(bob)
        send_reset("bob@example.com", revoked)
        verification = await one_time_tokens.issue(cache, TokenPurpose.VERIFY_EMAIL, ada, 600)
        link = f"https://x.example/v?t={verification}"
        mailer.send_verification(db_session, "ada@example.com", link, verification)
        await db_session.commit()
        await tasks()  # refused for now: every message waits for its retry
        await one_time_tokens.revoke_all(cache, bob)
        refuse_recipients(None)  # the server is back
        await relay_when_due(app)

    tokens = (newer, older, revoked, verification)
    sent = sorted(token for email in outbox for token in tokens if token in email.html)
    assert sent == sorted([newer, verification])
    ended = await db_session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.EXPIRED)
        .execution_options(populate_existing=True)
    )
    assert {(m.to_email, m.last_error, m.html_body) for m in ended} == {
        ("ada@example.com", LINK_DEAD_ERROR, ""),
        ("bob@example.com", LINK_DEAD_ERROR, ""),
    }


async def test_a_dead_message_whose_link_expires_leaves_the_dead_letters(
    app: FastAPI,
    mailer: MailService,
    tasks: BackgroundTasks,
    db_session: AsyncSession,
    resources: Resources,
    refuse_recipients: Callable[[bool | None], None],
) -> None:
    """No retry can help it any more: it stops counting as a dead letter (the alert on
    `outbox_dead_messages` clears by itself) and its body, link and all, is erased."""
    refuse_recipients(True)
    mailer.send_password_reset(db_session, "ada@example.com", "https://app.example.com/r?t=11")
    await db_session.commit()
    await tasks()
    service = OutboxService(resources.settings)
    assert (await service.counts(db_session)).dead == 1
    await db_session.execute(update(OutboxMessage).values(expires_at=utcnow()))
    await db_session.commit()

    await run_relay(app)

    expired = await only_message(db_session)
    assert (expired.status, expired.html_body) == (OutboxStatus.EXPIRED, "")
    assert (await service.counts(db_session)).dead == 0


async def test_a_job_that_waited_past_its_message_s_link_sends_nothing(
    app: FastAPI, mailer: MailService, outbox: list[RecordedEmail], db_session: AsyncSession
) -> None:
    mailer.send_verification(db_session, "ada@example.com", "https://app.example.com/v?token=9")
    mailer.send_account_exists(db_session, "bob@example.com")
    await db_session.commit()
    messages = (await db_session.scalars(select(OutboxMessage))).all()
    by_template = {message.template: message for message in messages}
    assert by_template["account_exists"].expires_at is None, "no link, no end"
    verification = by_template["verify_email"]
    await db_session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == verification.id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    await db_session.commit()
    context = app_job_context(app)

    handout = Handout(verification.id, 0)
    status = await context.outbox.deliver(
        context.session_factory, context.email_provider, context.sender, handout, context.cache
    )

    assert status is None
    assert outbox == []


async def test_the_dead_listing_shows_a_stored_error_on_its_own_line_and_inert(
    mailer: MailService,
    db_session: AsyncSession,
    resources: Resources,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A provider's answer is stored as the error: its line breaks and terminal escapes
    must not forge rows of the listing or reach the operator's terminal."""
    mailer.send_account_exists(db_session, "ada@example.com")
    await db_session.commit()
    forged = "refused\n00000000-0000-0000-0000-000000000000  welcome  \x1b[2Jforged\r"
    await db_session.execute(
        update(OutboxMessage).values(status=OutboxStatus.DEAD, last_error=forged)
    )
    await db_session.commit()

    assert await anyio.to_thread.run_sync(main, ["outbox", "dead"], resources.settings) == 0

    listing = capsys.readouterr().out
    assert listing.count("\n") == 1
    assert "\x1b" not in listing
    assert "\r" not in listing
    assert "\\x1b[2Jforged\\r" in listing


class NeverAnswers:
    """A mail server that takes the message and never answers: the attempt is abandoned
    (its worker killed, or the job cut off at its lease) before any outcome is written."""

    async def send_email(self, *args: object, **kwargs: object) -> None:
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        pass


async def abandoned_attempt(service: OutboxService, resources: Resources) -> list[Handout]:
    """One relay run whose deliveries are all abandoned, then their leases end."""
    async with resources.session_factory() as db:
        handouts = await service.hand_out(db)
    sender = Sender(email="noreply@example.com", name="Test")
    for handout in handouts:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                service.deliver(
                    resources.session_factory, NeverAnswers(), sender, handout, resources.cache
                ),
                0.2,
            )
    async with resources.session_factory() as db:
        past = utcnow() - timedelta(seconds=1)
        await db.execute(update(OutboxMessage).values(locked_until=past, next_attempt_at=past))
        await db.commit()
    return handouts


def dead_outcomes() -> float:
    return REGISTRY.get_sample_value("outbox_deliveries_total", {"outcome": "dead"}) or 0.0


async def test_a_message_whose_attempts_never_report_is_dead_after_the_last_one(
    mailer: MailService,
    db_session: AsyncSession,
    resources: Resources,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A message that kills its worker on every attempt (or always outlives its lease)
    records no failure: it is dead-lettered once its attempts are spent, not retried
    forever."""
    mailer.send_welcome(db_session, "ada@example.com", "https://app.example.com/v?token=5")
    await db_session.commit()
    settings = resources.settings.model_copy(update={"outbox_max_attempts": 3})
    service = OutboxService(settings)
    dead_before = dead_outcomes()

    for attempt in range(3):
        [handout] = await abandoned_attempt(service, resources)
        assert handout.attempt == attempt
        message = await only_message(db_session)
        assert (message.status, message.attempts) == (OutboxStatus.PENDING, attempt + 1)

    assert await abandoned_attempt(service, resources) == [], "no fourth attempt"
    dead = await only_message(db_session)
    assert (dead.status, dead.attempts, dead.failures) == (OutboxStatus.DEAD, 3, 0)
    assert dead.last_error is not None
    assert UNFINISHED_ATTEMPTS_ERROR in dead.last_error
    assert dead_outcomes() == dead_before + 1
    async with resources.session_factory() as db:
        assert (await service.counts(db)).dead == 1
    assert await anyio.to_thread.run_sync(main, ["outbox", "dead"], settings) == 0
    listing = capsys.readouterr().out
    assert str(dead.id) in listing
    assert UNFINISHED_ATTEMPTS_ERROR in listing


@pytest.mark.usefixtures("fast_retries")
async def test_retrying_an_id_given_twice_retries_it_once_and_succeeds(
    app: FastAPI,
    mailer: MailService,
    tasks: BackgroundTasks,
    db_session: AsyncSession,
    resources: Resources,
    unreachable_email_provider: EmailProvider,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mailer.send_welcome(db_session, "ada@example.com", "https://app.example.com/v?token=6")
    await db_session.commit()
    with jobs_sending_through(app, unreachable_email_provider):
        await tasks()
        for _ in range(3):
            await relay_when_due(app)
    dead = await only_message(db_session)
    assert dead.status is OutboxStatus.DEAD

    retry = ["outbox", "retry", str(dead.id), str(dead.id)]
    assert await anyio.to_thread.run_sync(main, retry, resources.settings) == 0
    output = capsys.readouterr()
    assert "1 dead message(s) queued again" in output.out
    assert output.err == ""
    assert (await only_message(db_session)).status is OutboxStatus.PENDING


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://postgres:pw-not-shown@127.0.0.1:{port}/nowhere",
        "sqlite+aiosqlite:////nonexistent-{port}/nowhere.db",
    ],
    ids=["postgresql", "sqlite"],
)
@pytest.mark.parametrize(
    "command",
    [
        ["seed"],
        ["create-admin", "--email", "ops@example.com"],
        ["outbox", "status"],
        ["outbox", "dead"],
        ["outbox", "retry", "--all"],
    ],
)
async def test_a_command_on_an_unreachable_database_says_so_in_one_line(
    command: list[str],
    url: str,
    resources: Resources,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADMIN_PASSWORD", "a long and unguessable passphrase 7")
    unreachable = url.format(port=free_port())
    settings = resources.settings.model_copy(update={"database_url": unreachable})

    assert await anyio.to_thread.run_sync(main, command, settings) == 1

    output = capsys.readouterr()
    assert output.out == ""
    [line] = output.err.splitlines()
    assert line.startswith("error: cannot reach the database: "), line
    assert "pw-not-shown" not in line
    assert "Traceback" not in output.err


def test_retry_needs_ids_or_all(resources: Resources) -> None:
    with pytest.raises(SystemExit):
        main(["outbox", "retry"], resources.settings)


@pytest.mark.parametrize("failures", [1, 2, 5, 12, 80])
def test_the_backoff_is_full_jitter_under_an_exponential_ceiling(failures: int) -> None:
    ceiling = min(600.0, 2.0 * 2 ** (failures - 1))
    waits = [backoff_seconds(failures, base=2.0, cap=600.0) for _ in range(200)]

    assert all(0 <= wait <= ceiling for wait in waits)
    assert max(waits) - min(waits) > ceiling / 4, "retries of one failure should spread out"


async def test_a_registration_that_rolls_back_leaves_no_email(
    app: FastAPI,
    outbox: list[RecordedEmail],
    db_session: AsyncSession,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The welcome is written with the account: a registration that fails before its
    commit (here the default role is missing, a deployment error: 500) sends nothing."""
    monkeypatch.setattr(resources.settings, "default_role", "no-such-role")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(
            f"{API}/auth/register", json={"email": unique_email(), "password": DEFAULT_PASSWORD}
        )

    assert response.status_code == 500
    await run_relay(app)
    assert outbox == []
    assert (await db_session.scalars(select(OutboxMessage))).all() == []


async def test_two_registrations_of_one_address_send_one_welcome_and_one_notice(
    client: httpx.AsyncClient, outbox: list[RecordedEmail]
) -> None:
    payload = {"email": unique_email("twice"), "password": DEFAULT_PASSWORD}

    responses = await asyncio.gather(
        *(client.post(f"{API}/auth/register", json=payload) for _ in range(2))
    )

    assert [response.status_code for response in responses] == [202, 202]
    subjects = sorted(message.subject.split()[0] for message in outbox)
    assert subjects == ["Welcome", "Your"], subjects


async def test_metrics_show_the_queue_depth_dead_letters_and_the_oldest_age(
    mailer: MailService, db_session: AsyncSession, resources: Resources
) -> None:
    for number in range(3):
        mailer.send_account_exists(db_session, f"user{number}@example.com")
    await db_session.commit()
    oldest = (await db_session.scalars(select(OutboxMessage))).first()
    assert oldest is not None
    oldest.status = OutboxStatus.DEAD
    await db_session.commit()
    app = create_app(resources.settings.model_copy(update={"metrics_enabled": True}))

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            scraped = (await client.get("/metrics")).text

    assert "outbox_pending_messages 2.0" in scraped
    assert "outbox_dead_messages 1.0" in scraped
    assert "outbox_oldest_pending_age_seconds" in scraped
