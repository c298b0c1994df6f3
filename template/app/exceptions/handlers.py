"""Exception handlers: one JSON error shape for every failure.

Unexpected exceptions are answered by the request middleware
(`app.core.middleware`), which logs the traceback and returns a 500 in this
same shape with the request id and nothing about the internals.
"""

import itertools
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, cast

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.exceptions import (
    UNAVAILABLE_RETRY_AFTER_SECONDS,
    AppException,
    RequestBodyTooLarge,
    UnauthorizedException,
)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return {
        "error": {"code": code, "message": message, "details": details, "request_id": request_id}
    }


def app_exception_handler(
    challenge: str,
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """The handler of every `AppException`: its status, code, message, details and
    headers; a 401 also carries `WWW-Authenticate: <challenge>` (RFC 9110, 11.6.1)."""

    async def handle_app_exception(_: Request, exc: Exception) -> JSONResponse:
        app_exc = cast(AppException, exc)  # registered for AppException only
        headers = app_exc.headers
        if isinstance(app_exc, UnauthorizedException):
            headers = {**(headers or {}), "WWW-Authenticate": challenge}
        return JSONResponse(
            error_body(app_exc.code, app_exc.message, jsonable_encoder(app_exc.details)),
            status_code=app_exc.status_code,
            headers=headers,
        )

    return handle_app_exception


# A 422 lists this many of the request's errors at most: a body of 80,000 unknown keys
# would otherwise get 80,000 details back (7.5 MB and seconds of CPU for a 1 MB request).
MAX_ERROR_DETAILS = 50


async def handle_request_validation(_: Request, exc: Exception) -> JSONResponse:
    errors = cast(RequestValidationError, exc).errors()
    details = [
        {"loc": list(error["loc"]), "message": error["msg"], "type": error["type"]}
        for error in itertools.islice(errors, MAX_ERROR_DETAILS)
    ]
    message = "The request is invalid"
    if len(errors) > MAX_ERROR_DETAILS:
        message += f" ({len(errors)} errors; the first {MAX_ERROR_DETAILS} are listed)"
    return JSONResponse(error_body("request_validation_error", message, details), status_code=422)


async def handle_body_too_large(_: Request, exc: Exception) -> JSONResponse:
    too_large = cast(RequestBodyTooLarge, exc)  # registered for RequestBodyTooLarge only
    return JSONResponse(
        error_body("payload_too_large", str(too_large.detail), {"max_bytes": too_large.max_bytes}),
        status_code=413,
    )


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    http_exc = cast(StarletteHTTPException, exc)
    phrase = HTTPStatus(http_exc.status_code).phrase
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    message = http_exc.detail if isinstance(http_exc.detail, str) else phrase
    headers = http_exc.headers
    if http_exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        headers = {**(headers or {}), "Allow": allowed_methods(request)}
    return JSONResponse(
        error_body(code, message), status_code=http_exc.status_code, headers=headers
    )


def allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path, for `Allow` on a 405.

    Starlette names only the first route that matched the path, and FastAPI has a route
    per method: `GET /articles` and `POST /articles` are two routes (RFC 9110, 15.5.6:
    `Allow` lists all the methods the resource supports).
    """
    path = request.scope["path"]
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        path_regex = getattr(route, "path_regex", None)
        if route.methods and path_regex is not None and path_regex.match(path):
            methods |= route.methods
    if "GET" in methods:
        methods.add("HEAD")  # app.core.head_requests
    return ", ".join(sorted(methods))


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


def _cluster_unreachable(exc: Exception) -> bool:
    """Whether a Redis Cluster error means nodes are out of reach: none answered (the
    last one's error is the cause) or none serves a key's slot."""
    if isinstance(exc, SlotNotCoveredError):
        return True
    cause = exc.__cause__
    return isinstance(cause, RedisConnectionError | RedisTimeoutError | OSError) and not isinstance(
        cause, AuthenticationError | AuthorizationError
    )


def register_exception_handlers(app: FastAPI, *, challenge: str) -> None:
    """Answer every error in the common shape; `challenge` is the `WWW-Authenticate`
    value of a 401, which depends on how the token travels (`app.routes.token_transport`)."""
    app.add_exception_handler(AppException, app_exception_handler(challenge))
    app.add_exception_handler(RequestValidationError, handle_request_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(RequestBodyTooLarge, handle_body_too_large)
    # A refused connection surfaces as OSError (ConnectionRefusedError) from the driver,
    # a dropped one as SQLAlchemy's OperationalError or InterfaceError.
    database_unavailable = unavailable_handler("database")
    for database_error in (OperationalError, InterfaceError, ConnectionRefusedError):
        app.add_exception_handler(database_error, database_unavailable)

    # asyncpg reports a connection lost mid-statement ("closed in the middle of operation")
    # as a plain DBAPIError; SQLAlchemy's disconnect detection marks it
    # `connection_invalidated`. Any other DBAPIError is a bug: raised again, so a 500.
    async def handle_database_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return await database_unavailable(request, exc)
        raise exc

    app.add_exception_handler(DBAPIError, handle_database_error)
    # Every API request authenticates and counts itself in the cache: without it, no
    # token can be checked against the deny-list, so the answer is 503, not a guess.
    cache_unavailable = unavailable_handler("cache", (AuthenticationError, AuthorizationError))
    for cache_error in (RedisConnectionError, RedisTimeoutError):
        app.add_exception_handler(cache_error, cache_unavailable)

    # A Redis Cluster that is electing a primary or moving slots (ClusterDownError,
    # TryAgainError), or has no reachable node, or none serving a slot: redis-py raises
    # these outside the ConnectionError family. No node reachable names why: a refused
    # password is raised again (a 500), like any other cluster error (a URL that names
    # a server without cluster mode, say).
    async def handle_cluster_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, ClusterError | TryAgainError) or _cluster_unreachable(exc):
            return await cache_unavailable(request, exc)
        raise exc

    for cluster_error in (ClusterError, TryAgainError, RedisClusterException):
        app.add_exception_handler(cluster_error, handle_cluster_error)
