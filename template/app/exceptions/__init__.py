"""The service's error hierarchy.

Every error the service raises on purpose is an `AppException`: it carries its
HTTP status, a stable machine-readable `code` and a message safe to show to
clients. Services raise these; `app.exceptions.handlers` turns them (and
framework errors) into one response shape:

    {"error": {"code": "...", "message": "...", "details": ..., "request_id": "..."}}
"""

from typing import Any, ClassVar

from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException


class ErrorBody(BaseModel):
    """What went wrong, for programs (`code`) and for people (`message`)."""

    code: str = Field(
        description="Stable, machine-readable: `not_found`, `unauthorized`, "
        "`request_validation_error`, `rate_limited`... (the status's phrase in snake case "
        "for errors the framework raises).",
        examples=["not_found"],
    )
    message: str = Field(description="Safe to show to the user.", examples=["Resource not found"])
    details: Any = Field(
        description="Structured data about the error, or null: for "
        "`request_validation_error` a list of `{loc, message, type}` (one per invalid "
        "input, the first 50 of them), for `rate_limited` `{retry_after_seconds}`.",
    )
    request_id: str | None = Field(
        description="The request's id (also in the `X-Request-ID` header): quote it when "
        "reporting a problem."
    )


class ErrorResponse(BaseModel):
    """The body of every error response, whatever its status."""

    error: ErrorBody


class AppException(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Internal server error"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    @property
    def headers(self) -> dict[str, str] | None:
        return None


class ValidationException(AppException):
    """The input is well-formed but breaks a business rule."""

    status_code = 422
    code = "validation_error"
    default_message = "The request breaks a validation rule"


class InvalidTokenException(AppException):
    """A one-time token (email verification, password reset) is unknown, used or expired."""

    status_code = 400
    code = "invalid_token"
    default_message = "This link is invalid or has expired; request a new one"


class IncorrectPasswordException(AppException):
    """The current password given to confirm a change is wrong. Not a 401: the caller's
    session is fine, and clients take a 401 to mean "logged out"."""

    status_code = 400
    code = "incorrect_password"
    default_message = "The current password is incorrect"


class UnauthorizedException(AppException):
    """No valid credentials: the client must (re-)authenticate."""

    status_code = 401
    code = "unauthorized"
    default_message = "Authentication required"

    @property
    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": "Bearer"}


class ForbiddenException(AppException):
    """Authenticated, but not allowed to do this."""

    status_code = 403
    code = "forbidden"
    default_message = "You are not allowed to do this"


class NotFoundException(AppException):
    status_code = 404
    code = "not_found"
    default_message = "Resource not found"


class ConflictException(AppException):
    status_code = 409
    code = "conflict"
    default_message = "The resource conflicts with an existing one"


class TooManyRequestsException(AppException):
    status_code = 429
    code = "rate_limited"
    default_message = "Too many requests; try again later"

    def __init__(self, message: str | None = None, *, retry_after_seconds: int) -> None:
        super().__init__(message, details={"retry_after_seconds": retry_after_seconds})
        self.retry_after_seconds = retry_after_seconds

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after_seconds)}


class PayloadTooLargeException(AppException):
    """A body or file over its limit: `details` says the limit (`max_bytes`, in bytes)."""

    status_code = 413
    code = "payload_too_large"
    default_message = "The request body is too large"

    def __init__(self, message: str | None = None, *, max_bytes: int) -> None:
        super().__init__(message, details={"max_bytes": max_bytes})
        self.max_bytes = max_bytes


class RequestBodyTooLarge(HTTPException):
    """A request body passed its limit while it was read (`app.core.body_limit`): 413.

    An HTTPException rather than an AppException: FastAPI turns any other error raised
    while it reads a body into a 400, but lets these through as they are."""

    def __init__(self, max_bytes: int, message: str | None = None) -> None:
        super().__init__(413, message or f"Request bodies are limited to {max_bytes} bytes")
        self.max_bytes = max_bytes


class UnsupportedMediaTypeException(AppException):
    status_code = 415
    code = "unsupported_media_type"
    default_message = "This content type is not accepted"


# How long a client should wait before retrying while a backing service is unreachable.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5


class ServiceUnavailableException(AppException):
    """A backing service (file storage, ...) failed; retrying later may succeed, after
    `Retry-After` (RFC 9110, 10.2.3)."""

    status_code = 503
    code = "service_unavailable"
    default_message = "A backing service is unavailable, try again later"

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)}


class ServerBusyException(ServiceUnavailableException):
    """Too much work is queued already (password hashing); retry after `Retry-After`."""

    code = "server_busy"
    default_message = "The server is busy; try again shortly"

    def __init__(self, message: str | None = None, *, retry_after_seconds: int) -> None:
        super().__init__(message, details={"retry_after_seconds": retry_after_seconds})
        self.retry_after_seconds = retry_after_seconds

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after_seconds)}


__all__ = [
    "UNAVAILABLE_RETRY_AFTER_SECONDS",
    "AppException",
    "ConflictException",
    "ErrorBody",
    "ErrorResponse",
    "ForbiddenException",
    "InvalidTokenException",
    "NotFoundException",
    "PayloadTooLargeException",
    "RequestBodyTooLarge",
    "ServerBusyException",
    "ServiceUnavailableException",
    "TooManyRequestsException",
    "UnauthorizedException",
    "UnsupportedMediaTypeException",
    "ValidationException",
]
