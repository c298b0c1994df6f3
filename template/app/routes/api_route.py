"""`ApiRoute`, the route class of the API routers: who is calling is checked before the
request body is read.

FastAPI reads and parses a route's body before it resolves any dependency, so a body
that is not JSON was answered 422 before the caller was counted against the rate limit
or authenticated: an anonymous client got a protected route to parse its input, and
the answer carried no `RateLimit-*` headers. For a route that takes a body, this class
runs the caller's checks first; every request is answered by the first that fails:

1. the rate limit: 429 (`identify_caller`; the request is counted whatever follows);
2. authentication: 401, and for the cookie transport the CSRF check: 403;
3. the permissions the route requires (`require_permission`): 403;
4. the body's media type, as the OpenAPI document states it: 415 (`app.core.media_types`);
5. the body: 413 past the size limit, 400 or 422 if it cannot be parsed or is invalid.

FastAPI then resolves the route's dependencies as usual and finds the caller identified
already (`identify_caller` counts a request once). A route without a body needs none of
this: FastAPI resolves the dependencies before it validates the parameters.

A route answering 204 gets a plain `Response` unless it names its own class: FastAPI's
default JSON class sends `Content-Type: application/json` even with no content, which
the document (no content) and RFC 9110 (15.3.5) do not have.
"""

from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from fastapi import Request, Response, status
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.core.media_types import JSON, require_media_type
from app.routes.deps import get_principal, identify_caller
from app.routes.permissions import PermissionRequirement

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def dependants(dependant: Dependant) -> Iterator[Dependant]:
    """`dependant` and every dependency below it, depth first."""
    yield dependant
    for sub in dependant.dependencies:
        yield from dependants(sub)


def body_media_types(route: APIRoute) -> list[str]:
    """The media types of the route's request body (none without a body): JSON for a
    body FastAPI parses, else what `openapi_extra` declares (the upload's multipart)."""
    if route.body_field is not None:
        return [JSON]
    declared = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
    return list(declared)


class ApiRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        no_content = kwargs.get("status_code") == status.HTTP_204_NO_CONTENT
        if no_content and isinstance(kwargs.get("response_class"), DefaultPlaceholder):
            kwargs["response_class"] = Response
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        media_types = frozenset(body_media_types(self))
        if not media_types:
            return handler
        calls = [dependant.call for dependant in dependants(self.dependant)]
        authenticated = get_principal in calls
        requirements = [call for call in calls if isinstance(call, PermissionRequirement)]

        async def caller_first(request: Request) -> Response:
            await identify_caller(request)
            if authenticated:
                principal = await get_principal(request)
                for requirement in requirements:
                    await requirement.check(principal)
            require_media_type(request.headers, media_types)
            return await handler(request)

        return caller_first
