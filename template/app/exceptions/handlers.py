"""Exception handlers: one JSON error shape for every failure.

Unexpected exceptions are answered by the request middleware
(`app.core.middleware`), which logs the traceback and returns a 500 in this
same shape with the request id and nothing about the internals.
"""

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, cast

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import AuthenticationError, AuthorizationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.exceptions import AppException


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return {
        "error": {"code": code, "message": message, "details": details, "request_id": request_id}
    }


async def handle_app_exception(_: Request, exc: Exception) -> JSONResponse:
    app_exc = cast(AppException, exc)  # registered for AppException only
    return JSONResponse(
        error_body(app_exc.code, app_exc.message, jsonable_encoder(app_exc.details)),
        status_code=app_exc.status_code,
        headers=app_exc.headers,
    )


async def handle_request_validation(_: Request, exc: Exception) -> JSONResponse:
    errors = cast(RequestValidationError, exc).errors()
    details = [
        {"loc": list(error["loc"]), "message": error["msg"], "type": error["type"]}
        for error in errors
    ]
    return JSONResponse(
        error_body("request_validation_error", "The request is invalid", details),
        status_code=422,
    )


async def handle_http_exception(_: Request, exc: Exception) -> JSONResponse:
    http_exc = cast(StarletteHTTPException, exc)
    phrase = HTTPStatus(http_exc.status_code).phrase
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    message = http_exc.detail if isinstance(http_exc.detail, str) else phrase
    return JSONResponse(
        error_body(code, message), status_code=http_exc.status_code, headers=http_exc.headers
    )


# How long a client should wait before retrying while a backing service is unreachable.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5
logger = structlog.stdlib.get_logger(__name__)


def unavailable_handler(
    service: str, misconfigured: tuple[type[Exception], ...] = ()
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """A handler for `service` being unreachable (restarting, failing over): a 503 the
    client may retry, rather than a 500 that reads like a bug. The connection pools
    reconnect by themselves once it is back.

    `misconfigured` are errors of the same family that no retry will cure (a wrong
    password, a missing permission): they are raised again, so the request middleware
    answers 500 and logs them with their traceback, where error tracking sees them.
    """

    async def handle_unavailable(_: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, misconfigured):
            raise exc
        logger.warning("service_unavailable", service=service, error=repr(exc))
        return JSONResponse(
            error_body("service_unavailable", f"The {service} is unavailable; try again shortly"),
            status_code=503,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
        )

    return handle_unavailable


def register_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppException, handle_app_exception)
    app.add_exception_handler(RequestValidationError, handle_request_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    # A refused connection surfaces as OSError (ConnectionRefusedError) from the driver,
    # a dropped one as SQLAlchemy's OperationalError or InterfaceError.
    database_unavailable = unavailable_handler("database")
    for database_error in (OperationalError, InterfaceError, ConnectionRefusedError):
        app.add_exception_handler(database_error, database_unavailable)
    # Every API request authenticates and counts itself in the cache: without it, no
    # token can be checked against the deny-list, so the answer is 503, not a guess.
    cache_unavailable = unavailable_handler("cache", (AuthenticationError, AuthorizationError))
    for cache_error in (RedisConnectionError, RedisTimeoutError):
        app.add_exception_handler(cache_error, cache_unavailable)
