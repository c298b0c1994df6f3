"""HEAD wherever GET is served (RFC 9110, 9.3.2), for every route at once (pure ASGI).

A HEAD request goes down to the app as a GET, and its answer comes back with the same
status and headers (`Content-Length` included) and no body: the routes declare GET
only, and the OpenAPI document describes the GET operations (HEAD is implied by them,
as RFC 9110 says). The access log and rate limits still see the request's own method,
outside this middleware. A route whose answer points elsewhere (a presigned redirect,
signed for one method) asks `is_head_request` which method the client will follow with.
"""

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEAD_SCOPE_KEY = "head_as_get"


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # A copy, so the middleware around this one still sees HEAD; the request state
        # (where a route leaves its rate-limit status for them) stays shared.
        scope.setdefault("state", {})
        await self.app({**scope, "method": "GET", HEAD_SCOPE_KEY: True}, receive, send_without_body)


def is_head_request(request: Request) -> bool:
    """True when the client sent HEAD (the route sees GET: `HeadAsGetMiddleware`)."""
    return bool(request.scope.get(HEAD_SCOPE_KEY))
