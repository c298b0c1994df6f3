"""Transactional email: render a message from its templates, send it in the background.

Routes get a `MailService` from the `Mailer` dependency (`app.routes.deps`) and
call one of its `send_*` methods. The message is rendered at once (a template
bug fails in the request, where it is seen) and delivered after the response
has been sent: the client never waits for the mail server, and a delivery
failure is logged, with the request id, instead of failing the request.
"""

from collections.abc import Callable
from typing import Any, ParamSpec, Protocol

import structlog

from app.core.config import Settings
from app.email.base import EmailDeliveryError, EmailProvider, InvalidEmailError
from app.email.rendering import RenderedEmail, render_email

P = ParamSpec("P")

logger = structlog.stdlib.get_logger(__name__)


class TaskScheduler(Protocol):
    """Runs work after the response is sent (FastAPI's `BackgroundTasks` is one)."""

    def add_task(self, func: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> None: ...


class MailService:
    def __init__(
        self, provider: EmailProvider, scheduler: TaskScheduler, settings: Settings
    ) -> None:
        self.provider = provider
        self.scheduler = scheduler
        self.from_email = settings.email_from
        self.from_name = settings.email_from_name
        self.product_name = settings.project_name
        self.public_url = settings.public_url

    def send_welcome(self, to_email: str, link: str) -> None:
        """Greet a newly registered user and ask them to confirm the address at `link`.

        Nothing the registrant typed is in it: the address is not verified yet, and
        the service must not carry a stranger's text to it (OWASP ASVS 5.0 V2.4).
        """
        subject = f"Welcome to {self.product_name}"
        self._schedule("welcome", to_email, subject, link=link)

    def send_account_exists(self, to_email: str) -> None:
        """Tell the owner of an address that someone tried to register it again."""
        subject = f"Your {self.product_name} account"
        sign_in = f"{self.public_url}/login"
        reset = f"{self.public_url}/reset-password"
        self._schedule("account_exists", to_email, subject, sign_in=sign_in, reset=reset)

    def send_verification(self, to_email: str, link: str) -> None:
        """Ask the user to confirm their address by opening `link`.

        `link` is the complete URL the user opens (it carries the verification token).
        """
        self._schedule("verify_email", to_email, "Confirm your email address", link=link)

    def send_password_reset(self, to_email: str, link: str) -> None:
        """Send the link that lets the user choose a new password.

        `link` is the complete URL the user opens (it carries the reset token).
        """
        self._schedule("reset_password", to_email, "Reset your password", link=link)

    def _schedule(self, template: str, to_email: str, subject: str, **context: object) -> None:
        rendered = render_email(template, product_name=self.product_name, **context)
        self.scheduler.add_task(self._deliver, template, to_email, subject, rendered)

    async def _deliver(
        self, template: str, to_email: str, subject: str, rendered: RenderedEmail
    ) -> None:
        try:
            await self.provider.send_email(
                to_email=to_email,
                subject=subject,
                body=rendered.html,
                from_email=self.from_email,
                from_name=self.from_name,
                text_body=rendered.text,
            )
        # Runs after the response: raising would only end in a context-free server log.
        except (EmailDeliveryError, InvalidEmailError) as error:
            logger.error("email_delivery_failed", template=template, error=str(error))
            return
        except Exception:
            logger.exception("email_delivery_failed", template=template)
            return
        logger.info("email_sent", template=template)
