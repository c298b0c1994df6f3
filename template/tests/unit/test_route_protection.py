"""No route is left open by accident: every route of the app is public on purpose, or
needs a login and a permission (or acts only on the caller's own account)."""

from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from app.main import create_app
from app.routes.deps import get_principal
from app.routes.permissions import PermissionRequirement
from tests.helpers import build_settings

# Reachable without logging in.
PUBLIC = {
    ("GET", "/health/live"),
    ("HEAD", "/health/live"),
    ("GET", "/health/ready"),
    ("HEAD", "/health/ready"),
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/verify-email/request"),
    ("POST", "/api/v1/auth/verify-email/confirm"),
    ("POST", "/api/v1/auth/password-reset/request"),
    ("POST", "/api/v1/auth/password-reset/confirm"),
}
# FastAPI's own documentation routes (not APIRoutes).
DOCUMENTATION = {"/api/v1/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# Log in, and act on your own account only: a user without any role can still see
# their profile, change their password and log out.
OWN_ACCOUNT = {
    ("GET", "/api/v1/users/me"),
    ("PATCH", "/api/v1/users/me"),
    ("DELETE", "/api/v1/users/me"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/logout-all"),
    ("GET", "/api/v1/auth/sessions"),
    ("DELETE", "/api/v1/auth/sessions/{session_id}"),
    ("POST", "/api/v1/auth/password"),
}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub_dependant in dependant.dependencies:
        yield from _calls(sub_dependant)


def _api_routes() -> dict[tuple[str, str], list[Callable[..., Any]]]:
    """Every (method, path) with the calls of its whole dependency tree.

    Routes are walked as FastAPI serves them (`iter_route_contexts`, what the OpenAPI
    generator uses too), so dependencies declared on an included router count.
    """
    app = create_app(build_settings(database_url="sqlite+aiosqlite://"))
    found: dict[tuple[str, str], list[Callable[..., Any]]] = {}
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        if not isinstance(dependant, Dependant):
            assert route.path in DOCUMENTATION, f"unexpected route {route.path}"
            continue
        for method in route.methods or ():
            found[(method, route.path_format or "")] = list(_calls(dependant))
    return found


def test_every_route_is_public_or_needs_a_login_and_a_permission() -> None:
    unprotected = []
    for key, calls in _api_routes().items():
        if key in PUBLIC:
            continue
        authenticated = get_principal in calls
        permitted = any(isinstance(call, PermissionRequirement) for call in calls)
        if not authenticated or not (permitted or key in OWN_ACCOUNT):
            unprotected.append(key)

    assert unprotected == [], "routes without a login and a permission (or not allow-listed)"


def test_the_allow_lists_name_existing_routes() -> None:
    routes = _api_routes()

    assert PUBLIC - routes.keys() == set()
    assert OWN_ACCOUNT - routes.keys() == set()
    for key in OWN_ACCOUNT:
        assert not any(isinstance(call, PermissionRequirement) for call in routes[key]), key


def test_public_routes_do_not_authenticate() -> None:
    routes = _api_routes()

    assert all(get_principal not in routes[key] for key in PUBLIC)
