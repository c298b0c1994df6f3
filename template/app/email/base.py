"""The email interface the rest of the service depends on, and the rules every message obeys."""

from dataclasses import dataclass
from typing import Protocol

from email_validator import EmailNotValidError, validate_email


class EmailDeliveryError(Exception):
    """The message could not be handed over: provider unreachable, refusing, or not configured."""


class PermanentDeliveryError(EmailDeliveryError):
    """The provider refused this message for good: sending it again gets the same answer
    (SMTP: a 5yz reply to the recipient or the message, RFC 5321 4.2.1; an HTTP API: a
    request it calls invalid). The outbox dead-letters it at once instead of spending
    the retry budget. A refusal that configuration causes (the login, the sender, the
    API key) is not one: once an operator fixes it, the same message goes through."""


class InvalidEmailError(ValueError):
    """The message is unsafe to send as it is (for example, a line break in a header value)."""


def ascii_domain(address: str) -> str:
    """`address` with its domain in IDNA A-labels (`xn--`, RFC 5890), the form every mail
    server takes (stored addresses keep the Unicode form users typed); unchanged when it
    is not one address. A Unicode local part stays: it needs SMTPUTF8 (RFC 6531)."""
    try:
        valid = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return address  # not for this function to judge: the server or the API answers
    return f"{valid.local_part}@{valid.ascii_domain}"


def validate_header_values(**values: str) -> None:
    """Refuse CR and LF in values that become header lines.

    A line break would end the header and let the rest of the value add headers or
    recipients of its own (header injection). Every provider sends only messages
    that passed this check, because `EmailMessage` runs it on creation.
    """
    for name, value in values.items():
        if "\r" in value or "\n" in value:
            raise InvalidEmailError(f"{name} must not contain line breaks (CR or LF)")


@dataclass(frozen=True, slots=True)
class EmailMessage:
    to_email: str
    subject: str
    html_body: str
    from_email: str
    from_name: str
    text_body: str | None = None

    def __post_init__(self) -> None:
        validate_header_values(
            to_email=self.to_email,
            subject=self.subject,
            from_email=self.from_email,
            from_name=self.from_name,
        )


class EmailProvider(Protocol):
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
        """Send one message: `body` is HTML, `text_body` its optional plain-text alternative.

        `idempotency_key` (letters and digits) is the same on every attempt at one message:
        a provider passes it on where receivers can drop a duplicate by it.

        Raises `InvalidEmailError` for an unsafe message, `PermanentDeliveryError` when
        the provider refused it for good and `EmailDeliveryError` when it could not be
        delivered this time.
        """

    async def aclose(self) -> None:
        """Release what the provider holds open (called when the application stops)."""
