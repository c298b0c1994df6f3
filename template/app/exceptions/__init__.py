"""The service's error hierarchy.

Every error the service raises on purpose is an `AppException`: it carries its
HTTP status, a stable machine-readable `code` and a message safe to show to
clients. Services raise these; `app.exceptions.handlers` turns them (and
framework errors) into one response shape:

    {"error": {"code": "...", "message": "...", "details": ..., "request_id": "..."}}
"""

from typing import Any, ClassVar


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
    status_code = 413
    code = "payload_too_large"
    default_message = "The request body is too large"


class UnsupportedMediaTypeException(AppException):
    status_code = 415
    code = "unsupported_media_type"
    default_message = "This content type is not accepted"


class ServiceUnavailableException(AppException):
    """A backing service (file storage, ...) failed; retrying later may succeed."""

    status_code = 503
    code = "service_unavailable"
    default_message = "A backing service is unavailable, try again later"


__all__ = [
    "AppException",
    "ConflictException",
    "ForbiddenException",
    "InvalidTokenException",
    "NotFoundException",
    "PayloadTooLargeException",
    "ServiceUnavailableException",
    "TooManyRequestsException",
    "UnauthorizedException",
    "UnsupportedMediaTypeException",
    "ValidationException",
]
