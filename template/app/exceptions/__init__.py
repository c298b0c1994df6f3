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


class InputProblem(BaseModel):
    """One thing wrong with the request's input."""

    loc: list[str | int] = Field(
        description="Where: `body`, `query`, `path` or `header`, then the names and list "
        'indexes down to the value (`["body", "title"]`); in `["body", 10]` the number is '
        "the character offset of a JSON syntax error.",
        examples=[["body", "title"]],
    )
    message: str = Field(description="What is wrong, for people.")
    type: str = Field(
        description="What is wrong, for programs: pydantic's error type (`missing`, "
        "`string_too_short`, ...), `json_invalid`, `text_nul`, `password_refused`, "
        "`unstorable_text`.",
        examples=["string_too_short"],
    )


class RetryDetails(BaseModel):
    """`rate_limited`, `server_busy`: when to try again (also in `Retry-After`)."""

    retry_after_seconds: int


class SizeLimitDetails(BaseModel):
    """`payload_too_large`: the largest body the route takes."""

    max_bytes: int


class MediaTypeDetails(BaseModel):
    """`unsupported_media_type`: the media types the route takes."""

    allowed: list[str]


class PermissionDetails(BaseModel):
    """`forbidden` when a grant carries permissions the caller lacks: those permissions."""

    missing_permissions: list[str]


class ErrorBody(BaseModel):
    """What went wrong, for programs (`code`) and for people (`message`)."""

    code: str = Field(
        description="Stable, machine-readable; each response of the document names the "
        "codes it may carry (`not_found`, `unauthorized`, `request_validation_error`, "
        "`rate_limited`...). Errors the framework raises carry the status's phrase in snake "
        "case (`method_not_allowed`).",
        examples=["not_found"],
    )
    message: str = Field(description="Safe to show to the user.", examples=["Resource not found"])
    details: (
        list[InputProblem]
        | RetryDetails
        | SizeLimitDetails
        | MediaTypeDetails
        | PermissionDetails
        | None
    ) = Field(
        description="Structured data about the error, or null: each problem with the input "
        "for `request_validation_error` (the first 50), `password_refused` and "
        "`validation_error` of an upload; `{retry_after_seconds}` for `rate_limited` and "
        "`server_busy`; `{max_bytes}` for `payload_too_large`; `{allowed}` for "
        "`unsupported_media_type`; `{missing_permissions}` for a refused grant.",
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


class PasswordRefusedException(ValidationException):
    """A new password the password policy refuses: `details` names the field and the
    rule (an `InputProblem` of type `password_refused`).

    The rules are `app.services.password_policy`'s."""

    code = "password_refused"
    default_message = "The password is refused"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(
            f"Password refused: {reason}",
            details=[{"loc": ["body", field], "message": reason, "type": self.code}],
        )


class InvalidCursorException(ValidationException):
    """A list's `cursor` that this endpoint did not issue, or issued for another `sort`,
    or sent with an `offset`."""

    code = "invalid_cursor"
    default_message = "The cursor is not one this endpoint issued"


class InvalidTokenException(AppException):
    """A one-time token (email verification, password reset) is unknown, used or expired."""

    status_code = 400
    code = "invalid_token"
    default_message = "This link is invalid or has expired; request a new one"


class IncorrectPasswordException(AppException):
    """The current password given to confirm a change is wrong (counted as a failed login).

    Not a 401: the caller's session is fine, and clients take a 401 to mean "logged out"."""

    status_code = 400
    code = "incorrect_password"
    default_message = "The current password is incorrect"


class UnauthorizedException(AppException):
    """No valid credentials: the client must (re-)authenticate.

    The answer carries `WWW-Authenticate` with the challenge of the service's token
    transport (`register_exception_handlers`' `challenge`)."""

    status_code = 401
    code = "unauthorized"
    default_message = "Authentication required"


class ForbiddenException(AppException):
    """Authenticated, but not allowed to do this."""

    status_code = 403
    code = "forbidden"
    default_message = "You are not allowed to do this"


class GrantRefusedException(ForbiddenException):
    """A change that would hand out or take away permissions the caller does not hold
    (`details.missing_permissions` lists them; OWASP API5:2023)."""

    def __init__(self, message: str, *, missing_permissions: list[str]) -> None:
        super().__init__(message, details={"missing_permissions": missing_permissions})


class OwnAccountException(ForbiddenException):
    """The caller's own account through a route for other people's: erasing it needs the
    password, which `DELETE /users/me` asks for (re-authentication before a sensitive
    account change, OWASP ASVS 4.0.3 V3.7.1)."""

    default_message = "Erase your own account with DELETE /users/me, which asks for your password"


class NotFoundException(AppException):
    """The resource does not exist, or is not one the caller may see."""

    status_code = 404
    code = "not_found"
    default_message = "Resource not found"


class ConflictException(AppException):
    """The request conflicts with the current state of the resource."""

    status_code = 409
    code = "conflict"
    default_message = "The resource conflicts with an existing one"


class PreconditionFailedException(AppException):
    """`If-Match` names a version of the resource that is no longer the current one: read
    it again, then retry (RFC 9110, 13.1.1)."""

    status_code = 412
    code = "precondition_failed"
    default_message = "The resource has changed since you read it; read it again"


class TooManyRequestsException(AppException):
    """The caller's rate limit is used up: retry after `Retry-After` seconds."""

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
    """A body, or an uploaded file, of a type the route does not take."""

    status_code = 415
    code = "unsupported_media_type"
    default_message = "This content type is not accepted"


# How long a client should wait before retrying while a backing service is unreachable.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5


class ServiceUnavailableException(AppException):
    """A backing service (the database, the cache, file storage) did not answer; a retry
    after `Retry-After` seconds may succeed.

    RFC 9110, 10.2.3."""

    status_code = 503
    code = "service_unavailable"
    default_message = "A backing service is unavailable, try again later"

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)}


class ServerBusyException(ServiceUnavailableException):
    """Too many passwords are being hashed already; retry after `Retry-After` seconds."""

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
    "GrantRefusedException",
    "InputProblem",
    "InvalidCursorException",
    "InvalidTokenException",
    "NotFoundException",
    "PasswordRefusedException",
    "PayloadTooLargeException",
    "PreconditionFailedException",
    "RequestBodyTooLarge",
    "ServerBusyException",
    "ServiceUnavailableException",
    "TooManyRequestsException",
    "UnauthorizedException",
    "UnsupportedMediaTypeException",
    "ValidationException",
]
