"""Request context middleware (pure ASGI, so it adds no per-request task or copy).

For every HTTP request it:
- takes a well-formed `X-Request-ID` from the client or makes one, binds it to
  the logging context and returns it on the response;
- adds the `RateLimit-*` headers of an API request (counted by a dependency, which
  leaves them in the request state) to its response, error responses included;
- writes one access-log line with method, path, status, latency and client address
  (the real client's when a trusted proxy reported it: see `trusted_proxies`);
- turns an unhandled exception into a 500 in the common error shape, with the
  request id and without the traceback (which goes to the log instead);
- logs a client that went away before its answer (`ClientDisconnect`, mid-upload
  say) as what it is: an info line, no traceback, nothing for error tracking.
"""

import logging
import re
import secrets
import time

import structlog
from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.metrics import CLIENT_CLOSED_REQUEST
from app.core.rate_limit import RateLimitStatus
from app.exceptions.handlers import error_body

# Accept a caller's id only if it is short and harmless to log and echo.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_logger = structlog.stdlib.get_logger("app.access")
# Consulted before the access line is built: in production (WARNING) it is never written.
_access_level = logging.getLogger("app.access")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = self._request_id(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status_code = 500
        response_started = response_complete = False
        # Whether the client left before the response was complete, and if so, whether
        # before it started: FastAPI answers a body cut short with a 400 nobody reads.
        disconnected: bool | None = None

        async def receive_watching_disconnect() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect" and not response_complete:
                disconnected = disconnected or not response_started
            return message

        async def send_with_request_id(message: Message) -> None:
            nonlocal status_code, response_started, response_complete
            if message["type"] == "http.response.body" and not message.get("more_body"):
                response_complete = True
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                headers = MutableHeaders(scope=message)
                headers.append("X-Request-ID", request_id)
                # Left by `identify_caller` (app.routes.deps) for every API request.
                rate_limit: RateLimitStatus | None = scope.get("state", {}).get("rate_limit")
                if rate_limit is not None:
                    for name, value in rate_limit.headers().items():
                        headers.append(name, value)
            await send(message)

        try:
            await self.app(scope, receive_watching_disconnect, send_with_request_id)
        except ClientDisconnect:
            # Nobody is left to answer: not a fault of the service.
            disconnected = disconnected or not response_started
        except Exception:
            access_logger.exception("unhandled_exception")
            if response_started:
                raise
            response = JSONResponse(
                error_body("internal_error", "Internal server error"),
                status_code=500,
                headers={"X-Request-ID": request_id},
            )
            await response(scope, receive, send)
        finally:
            if disconnected is not None:
                if disconnected:  # before any answer: what was sent, nobody received
                    status_code = CLIENT_CLOSED_REQUEST
                access_logger.info(
                    "client_disconnected", method=scope["method"], path=scope["path"]
                )
            if _access_level.isEnabledFor(logging.INFO):
                self._log_access(scope, status_code, started)

    @staticmethod
    def _log_access(scope: Scope, status_code: int, started: float) -> None:
        client = scope.get("client")
        access_logger.info(
            "request",
            method=scope["method"],
            path=scope["path"],
            status=status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            client=client[0] if client else None,
        )

    @staticmethod
    def _request_id(scope: Scope) -> str:
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate: str = value.decode("latin-1")
                if _VALID_REQUEST_ID.match(candidate):
                    return candidate
                break
        return secrets.token_hex(16)
