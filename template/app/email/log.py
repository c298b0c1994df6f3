"""Development delivery: each message goes to the log instead of out.

Chosen by `create_email_provider` when no delivery is configured, which production
refuses at start-up; so in development a verification or reset link can still be
used without a mail server. The links are pages of the web front end at PUBLIC_URL,
which this service does not serve: each log line says where the front end (or a
developer, by hand) sends the link's token.
"""

import structlog

from app.email.base import EmailMessage

logger = structlog.stdlib.get_logger(__name__)

# Where a link's token goes (app/routes/auth.py): a front end's /verify-email and
# /reset-password pages post it there.
LINKS_NOTE = (
    "links are pages of your web front end (PUBLIC_URL); it posts their token to"
    " POST /api/v1/auth/verify-email/confirm {token} or"
    " POST /api/v1/auth/password-reset/confirm {token, new_password}"
)


class LogEmailProvider:
    async def send_email(
        self,
        to_email: str,
        subject: str,
        body: str,
        from_email: str,
        from_name: str,
        text_body: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        message = EmailMessage(to_email, subject, body, from_email, from_name, text_body)
        logger.warning(
            "email_logged_not_sent",
            to=message.to_email,
            subject=message.subject,
            body=message.text_body or message.html_body,
            links=LINKS_NOTE,
        )

    async def aclose(self) -> None:
        """Nothing to release."""
