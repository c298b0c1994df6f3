"""Transactional email: render a message from its templates and put it in the outbox.

Services call a `send_*` method with the session of the change that causes the email,
before committing it: the message is written in the same transaction (the transactional
outbox, `app.services.outbox_service`), so it exists exactly when the change does. The
message is rendered at once (a template bug fails in the request, where it is seen);
a worker job delivers it, with retries, after the commit. Once the response has gone,
the relay is woken so the message need not wait for its next scheduled run.
"""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ParamSpec, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.email.rendering import render_email
from app.models.base import utcnow
from app.services import one_time_tokens
from app.services.one_time_tokens import TokenPurpose
from app.services.outbox_service import LinkToken, OutboxService

P = ParamSpec("P")


class TaskScheduler(Protocol):
    """Runs work after the response is sent (FastAPI's `BackgroundTasks` is one)."""

    def add_task(self, func: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> None: ...


class MailService:
    def __init__(
        self,
        settings: Settings,
        scheduler: TaskScheduler,
        wake_relay: Callable[[], Awaitable[None]],
    ) -> None:
        """`wake_relay` hands out due outbox messages now; it runs after the response."""
        self.outbox = OutboxService(settings)
        self.scheduler = scheduler
        self.wake_relay = wake_relay
        self.product_name = settings.project_name
        self.public_url = settings.public_url
        # What the links' one-time tokens live (`AuthService`): no message outlives its link.
        self.verification_link_life = timedelta(minutes=settings.email_verification_ttl_minutes)
        self.reset_link_life = timedelta(minutes=settings.password_reset_ttl_minutes)
        self._relay_woken = False

    # `token` (below): the one-time token `link` carries. The message is not sent once the
    # token store stops accepting it (used, replaced by a newer link, revoked); without it
    # only the link's life is checked.

    def send_welcome(
        self, db: AsyncSession, to_email: str, link: str, token: str | None = None
    ) -> None:
        """Greet a newly registered user and ask them to confirm the address at `link`.

        Nothing the registrant typed is in it: the address is not verified yet, and
        the service must not carry a stranger's text to it (OWASP ASVS 5.0 V2.4).
        """
        subject = f"Welcome to {self.product_name}"
        carried = self._link(TokenPurpose.VERIFY_EMAIL, self.verification_link_life, token)
        self._enqueue(db, "welcome", to_email, subject, carried, link=link)

    def send_account_exists(self, db: AsyncSession, to_email: str) -> None:
        """Tell the owner of an address that someone tried to register it again."""
        subject = f"Your {self.product_name} account"
        sign_in = f"{self.public_url}/login"
        reset = f"{self.public_url}/reset-password"
        self._enqueue(db, "account_exists", to_email, subject, None, sign_in=sign_in, reset=reset)

    def send_verification(
        self, db: AsyncSession, to_email: str, link: str, token: str | None = None
    ) -> None:
        """Ask the user to confirm their address by opening `link`.

        `link` is the complete URL the user opens (it carries the verification token).
        """
        subject = "Confirm your email address"
        carried = self._link(TokenPurpose.VERIFY_EMAIL, self.verification_link_life, token)
        self._enqueue(db, "verify_email", to_email, subject, carried, link=link)

    def send_password_reset(
        self, db: AsyncSession, to_email: str, link: str, token: str | None = None
    ) -> None:
        """Send the link that lets the user choose a new password.

        `link` is the complete URL the user opens (it carries the reset token).
        """
        subject = "Reset your password"
        carried = self._link(TokenPurpose.RESET_PASSWORD, self.reset_link_life, token)
        self._enqueue(db, "reset_password", to_email, subject, carried, link=link)

    @staticmethod
    def _link(purpose: TokenPurpose, life: timedelta, token: str | None) -> LinkToken:
        digest = one_time_tokens.token_digest(token) if token is not None else None
        return LinkToken(purpose, digest, utcnow() + life)

    def _enqueue(
        self,
        db: AsyncSession,
        template: str,
        to_email: str,
        subject: str,
        carried: LinkToken | None,
        **context: object,
    ) -> None:
        """Render and add the message; `carried`: the token of the link in it, if any."""
        rendered = render_email(template, product_name=self.product_name, **context)
        self.outbox.add(
            db,
            template=template,
            to_email=to_email,
            subject=subject,
            html_body=rendered.html,
            text_body=rendered.text,
            link=carried,
        )
        if not self._relay_woken:
            self.scheduler.add_task(self.wake_relay)
            self._relay_woken = True
