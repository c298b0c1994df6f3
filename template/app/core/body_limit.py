"""A limit on every request body, enforced while it is read (pure ASGI middleware).

Every HTTP request gets a `BodyLimit` (REQUEST_MAX_BYTES) in its scope, and its body is
read through a counter: the first read checks a declared `Content-Length` against the
limit, and each chunk of a body without one (chunked) is counted as it arrives. Past
the limit the read raises `RequestBodyTooLarge`, which the exception handlers answer
with 413 in the common error shape; nothing past the limit is read or kept.

The check is made when the body is first read, not when the request arrives, so a
route that accepts more can raise its own limit before reading (the upload route:
`raise_body_limit`), and a route that never reads its body never pays for it.

A response sent before the request's body was read to its end (the 413, an early 401
or 403, a route that ignores its body) carries `Connection: close`: uvicorn then closes
the connection once the response is written, instead of reading and discarding the rest
of the body to reach the next request on it (a declared `Content-Length` of 10 GB kept
the worker reading for as long as the client sent; RFC 9112, 9.6: a server that does
not read the whole message closes the connection). A client that reads no answer before
it has sent its whole body sees the connection reset instead of the 413.
"""

from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.exceptions import RequestBodyTooLarge

SCOPE_KEY = "app.body_limit"


@dataclass(slots=True)
class BodyLimit:
    max_bytes: int
    message: str | None = None
    # The limit the 413 states, when it is not the body's: an upload's is its file's.
    stated_max_bytes: int | None = None
    received: int = 0
    checked_length: bool = False
    complete: bool = False

    def check_declared_length(self, scope: Scope) -> None:
        """A declared `Content-Length` past the limit fails before anything is read."""
        if self.checked_length:
            return
        self.checked_length = True
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > self.max_bytes:
                    raise self.too_large()
                return

    def count(self, message: Message) -> None:
        if message["type"] == "http.request":
            self.complete = not message.get("more_body", False)
            self.received += len(message.get("body", b""))
            if self.received > self.max_bytes:
                raise self.too_large()

    def too_large(self) -> RequestBodyTooLarge:
        stated = self.max_bytes if self.stated_max_bytes is None else self.stated_max_bytes
        return RequestBodyTooLarge(stated, self.message)


def raise_body_limit(scope: Scope, max_bytes: int, message: str, *, stated_max_bytes: int) -> None:
    """Let this request's body grow to `max_bytes` (413 with `message` past it, whose
    `details.max_bytes` is `stated_max_bytes`: the limit the client is told to keep to).

    Call it before the body is first read; a route that reads a large body on purpose
    (an upload) does, in the dependency that reads it."""
    limit: BodyLimit | None = scope.get(SCOPE_KEY)
    if limit is not None:
        limit.max_bytes, limit.message = max_bytes, message
        limit.stated_max_bytes = stated_max_bytes


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = BodyLimit(self.max_bytes)
        scope[SCOPE_KEY] = limit

        async def receive_within_limit() -> Message:
            limit.check_declared_length(scope)
            message = await receive()
            limit.count(message)
            return message

        async def send_closing_unread(message: Message) -> None:
            if (
                message["type"] == "http.response.start"
                and not limit.complete
                and _declared_length(scope) != 0
            ):
                MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        await self.app(scope, receive_within_limit, send_closing_unread)


def _declared_length(scope: Scope) -> int | None:
    """The body's declared `Content-Length`, 0 without a body, None when its length is
    unknown (`Transfer-Encoding: chunked`; RFC 9112, 6.3)."""
    length = 0
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length" and value.isdigit():
            length = int(value)
    return length
