"""Every route takes the database session that fits it: a read (GET) takes the read-only
`ReadDbSession`, served by a read replica when one is usable, unless it is listed here
as reading the primary, with the reason; a route that may write never takes it."""

from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from app.main import create_app
from app.routes.deps import get_db, get_read_db
from tests.helpers import build_settings

ACCESS = "decides or shows who may do what: read as it is on the primary, at once"
# GET routes that read the primary, and why.
READS_FROM_PRIMARY = {
    ("GET", "/api/v1/auth/sessions"): ACCESS + " (a session just ended is not listed)",
    ("GET", "/api/v1/rbac/features"): ACCESS,
    ("GET", "/api/v1/rbac/actions"): ACCESS,
    ("GET", "/api/v1/rbac/permissions"): ACCESS,
    ("GET", "/api/v1/rbac/roles"): ACCESS,
    ("GET", "/api/v1/rbac/roles/{role_id}"): ACCESS,
    ("GET", "/api/v1/files/{file_id}"): "the row is checked against the stored object, "
    "which a delete removes at once: a replica could still show a deleted file",
    ("GET", "/api/v1/files/{file_id}/content"): "as for the file's metadata",
}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub_dependant in dependant.dependencies:
        yield from _calls(sub_dependant)


def _sessions_by_route() -> dict[tuple[str, str], set[Callable[..., Any]]]:
    """Every (method, path) that takes a database session, with the dependencies giving it."""
    app = create_app(build_settings(database_url="sqlite+aiosqlite://"))
    found: dict[tuple[str, str], set[Callable[..., Any]]] = {}
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        if not isinstance(dependant, Dependant):
            continue
        sessions = {call for call in _calls(dependant) if call in (get_db, get_read_db)}
        for method in route.methods or ():
            if sessions and method != "HEAD":  # HEAD is served as GET
                found[(method, route.path_format or "")] = sessions
    return found


def test_reads_take_the_read_only_session_unless_they_must_read_the_primary() -> None:
    routes = _sessions_by_route()
    on_primary = {key for key, sessions in routes.items() if key[0] == "GET" and get_db in sessions}

    assert on_primary - READS_FROM_PRIMARY.keys() == set(), (
        "GET routes on the read-write DbSession: take ReadDbSession (a read replica when "
        "one is usable), or list them in READS_FROM_PRIMARY with the reason"
    )


def test_routes_that_may_write_never_take_the_read_only_session() -> None:
    routes = _sessions_by_route()

    writing = [key for key, calls in routes.items() if key[0] != "GET" and get_read_db in calls]

    assert writing == [], "routes that may write must take DbSession"


def test_the_primary_reads_listed_exist_and_read_the_primary() -> None:
    routes = _sessions_by_route()

    for key in READS_FROM_PRIMARY:
        assert key in routes, f"{key} is not a route that takes a session"
        assert routes[key] == {get_db}, f"{key} takes ReadDbSession: drop it from the list"
