"""Development delivery: each message goes to the log instead of out.

Chosen by `create_email_provider` when no delivery is configured, which production
refuses at start-up; so in development a verification or reset link can still be
followed, from the log, without a mail server.
"""

import structlog

from app.email.base import EmailMessage

logger = structlog.stdlib.get_logger(__name__)


class LogEmailProvider:
    async def send_email(
        self,
        to_email: str,
        subject: str,
        body: str,
        from_email: str,
        from_name: str,
        text_body: str | None = None,
    ) -> None:
        message = EmailMessage(to_email, subject, body, from_email, from_name, text_body)
        logger.warning(
            "email_logged_not_sent",
            to=message.to_email,
            subject=message.subject,
            body=message.text_body or message.html_body,
        )

    async def aclose(self) -> None:
        """Nothing to release."""
