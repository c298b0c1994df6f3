"""Who is calling is checked before the request body is read, on every route that takes
one (`app.routes.api_route`): the rate limit (429), then the login (401), then the
permissions (403), then the body's media type (415), then the body itself (413, 422).

Each test walks every route with a body as the app serves it, so a new route is held to
the same order without being listed here.
"""

import uuid
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from app.core.resources import Resources
from app.routes.api_route import body_media_types, dependants
from app.routes.deps import get_principal
from app.routes.permissions import PermissionRequirement
from tests.helpers import client_from, error_of, login_as

RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
MALFORMED_JSON = b'{"title": '


@dataclass(frozen=True)
class BodyRoute:
    method: str
    path: str  # path parameters filled in
    media_types: tuple[str, ...]
    authenticated: bool
    permissions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def body_routes(app: FastAPI) -> list[BodyRoute]:
    found = []
    for route in iter_route_contexts(app.routes):
        original = route.original_route
        if not isinstance(original, APIRoute) or not (media_types := body_media_types(original)):
            continue
        calls = [dependant.call for dependant in dependants(route.dependant)]
        path = str(route.path_format)
        for name in route.param_convertors:
            path = path.replace("{" + name + "}", str(uuid.uuid4()))
        for method in route.methods or ():
            found.append(
                BodyRoute(
                    method,
                    path,
                    tuple(media_types),
                    authenticated=get_principal in calls,
                    permissions=tuple(
                        call.permission for call in calls if isinstance(call, PermissionRequirement)
                    ),
                )
            )
    assert len(found) > 10, "the routes with a body were not found"
    return found


async def send_malformed(
    client: httpx.AsyncClient, route: BodyRoute, headers: dict[str, str] | None = None
) -> httpx.Response:
    """A body of the route's own media type that cannot be parsed."""
    content_type = route.media_types[0]
    if content_type == "multipart/form-data":
        content_type += "; boundary=missing"
    return await client.request(
        route.method,
        route.path,
        content=MALFORMED_JSON,
        headers={**(headers or {}), "Content-Type": content_type},
    )


def _has_rate_limit_headers(response: httpx.Response) -> bool:
    return all(name in response.headers for name in RATE_LIMIT_HEADERS)


async def test_an_anonymous_malformed_body_is_401_on_protected_routes_and_counted(
    app: FastAPI, resources: Resources
) -> None:
    answers = {}
    async with client_from(app, "198.51.100.40") as client:
        for route in body_routes(app):
            answers[route] = await send_malformed(client, route)

    for route, response in answers.items():
        assert _has_rate_limit_headers(response), f"{route} was not counted"
        if route.authenticated:
            assert response.status_code == 401, f"{route}: {response.text}"
            error_of(response, 401, "unauthorized")
        else:  # public: the body is what is wrong
            assert response.status_code in (400, 422), f"{route}: {response.text}"


async def test_a_wrong_media_type_is_checked_after_the_login(
    app: FastAPI, resources: Resources
) -> None:
    answers = {}
    async with client_from(app, "198.51.100.41") as client:
        for route in body_routes(app):
            headers = {"Content-Type": "text/plain"}
            answers[route] = await client.request(
                route.method, route.path, content=b"{}", headers=headers
            )

    for route, response in answers.items():
        assert _has_rate_limit_headers(response), f"{route} was not counted"
        if route.authenticated:
            error_of(response, 401, "unauthorized")
        else:
            error = error_of(response, 415, "unsupported_media_type")
            assert error["details"] == {"allowed": list(route.media_types)}


async def test_a_malformed_body_without_the_permission_is_403(
    app: FastAPI, resources: Resources
) -> None:
    async with client_from(app, "198.51.100.42") as client:
        headers = await login_as(client, resources)  # no role, so no permission
        guarded = [route for route in body_routes(app) if route.permissions]
        answers = {}
        for route in guarded:
            answers[route] = await send_malformed(client, route, headers)

    assert guarded, "no route requires a permission"
    for route, response in answers.items():
        error = error_of(response, 403, "forbidden")
        assert route.permissions[0] in error["message"], f"{route}: {error}"
        assert _has_rate_limit_headers(response)


async def test_a_malformed_body_past_the_limit_is_429(
    app: FastAPI, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources.settings, "rate_limit_per_ip", "1/hour")
    # The upload has a limit of its own (`@rate_limit`).
    routes = [route for route in body_routes(app) if route.media_types == ("application/json",)]
    async with client_from(app, "198.51.100.43") as client:
        first = await send_malformed(client, routes[0])
        answers = {route: await send_malformed(client, route) for route in routes[1:]}

    assert first.status_code in (401, 422)  # counted, the one request the limit allows
    for route, response in answers.items():
        error_of(response, 429, "rate_limited")
        assert "Retry-After" in response.headers, route


async def test_a_logged_in_caller_gets_the_body_checked(app: FastAPI, resources: Resources) -> None:
    """Past the caller's checks the body is what is answered: 415 for its type, 422 for
    JSON that cannot be parsed, each with the rate-limit headers."""
    async with client_from(app, "198.51.100.44") as client:
        headers = await login_as(client, resources, "admin")
        wrong_type = await client.post(
            "/api/v1/articles", content=b"{}", headers={**headers, "Content-Type": "text/plain"}
        )
        no_type = await client.post("/api/v1/articles", content=b"{}", headers=headers)
        malformed = await client.post(
            "/api/v1/articles",
            content=MALFORMED_JSON,
            headers={**headers, "Content-Type": "application/json"},
        )

    error_of(wrong_type, 415, "unsupported_media_type")
    error_of(no_type, 415, "unsupported_media_type")
    error = error_of(malformed, 422, "request_validation_error")
    assert error["details"][0]["type"] == "json_invalid"
    assert all(map(_has_rate_limit_headers, (wrong_type, no_type, malformed)))
