"""Both forms of `require_permission` run the check before the endpoint body, through
FastAPI's dependency resolution, and show up in the OpenAPI document."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from app.core.middleware import RequestContextMiddleware
from app.core.resources import Resources
from app.exceptions.handlers import register_exception_handlers
from app.routes.deps import CurrentPrincipal
from app.routes.permissions import require_permission
from app.routes.token_transport import authentication_challenge
from app.services.principal import Principal
from tests.helpers import error_of, login_as

CanPublish = Annotated[Principal, Depends(require_permission("articles:publish"))]
FORMS = ["decorator", "dependency", "alias"]


class Probe:
    """A small app with one endpoint per form; records which bodies ran.

    Its routes are not behind the API routers' `identify_caller`: `CurrentPrincipal`
    identifies the caller by itself.
    """

    def __init__(self, resources: Resources) -> None:
        self.ran: list[str] = []
        self.app = FastAPI()
        self.app.state.resources = resources
        challenge = authentication_challenge(resources.settings)
        register_exception_handlers(self.app, challenge=challenge)
        self.app.add_middleware(RequestContextMiddleware)

        @self.app.post("/decorator")
        @require_permission("articles:publish")
        async def decorated(principal: CurrentPrincipal) -> dict[str, Any]:
            self.ran.append("decorator")
            return {"user_id": str(principal.user_id)}

        @self.app.post(
            "/dependency", dependencies=[Depends(require_permission("articles:publish"))]
        )
        async def dependency(principal: CurrentPrincipal) -> dict[str, Any]:
            self.ran.append("dependency")
            return {"user_id": str(principal.user_id)}

        @self.app.post("/alias")
        async def alias(principal: CanPublish) -> dict[str, Any]:
            self.ran.append("alias")
            return {"user_id": str(principal.user_id)}


@pytest.fixture
async def probe(resources: Resources) -> AsyncIterator[tuple[Probe, httpx.AsyncClient]]:
    found = Probe(resources)
    transport = httpx.ASGITransport(app=found.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield found, client


@pytest.mark.parametrize("form", FORMS)
async def test_the_body_runs_for_a_holder_of_the_permission(
    client: httpx.AsyncClient,
    resources: Resources,
    probe: tuple[Probe, httpx.AsyncClient],
    form: str,
) -> None:
    found, probe_client = probe
    headers = await login_as(client, resources, "author")
    me = (await client.get("/api/v1/users/me", headers=headers)).json()

    response = await probe_client.post(f"/{form}", headers=headers)

    assert response.status_code == 200, response.text
    # The alias hands over the awaited check's result: the caller, not a coroutine.
    assert response.json() == {"user_id": me["id"]}
    assert found.ran == [form]


@pytest.mark.parametrize("form", FORMS)
async def test_without_the_permission_the_body_never_runs(
    client: httpx.AsyncClient,
    resources: Resources,
    probe: tuple[Probe, httpx.AsyncClient],
    form: str,
) -> None:
    found, probe_client = probe
    headers = await login_as(client, resources, "viewer")

    forbidden = await probe_client.post(f"/{form}", headers=headers)
    anonymous = await probe_client.post(f"/{form}")

    assert "articles:publish" in error_of(forbidden, 403, "forbidden")["message"]
    error_of(anonymous, 401, "unauthorized")
    assert found.ran == []


def test_decorated_routes_document_security_and_permission(app: FastAPI) -> None:
    operation = app.openapi()["paths"]["/api/v1/articles/{article_id}/publish"]["post"]

    assert operation["security"]
    assert "Requires the `articles:publish` permission." in operation["description"]
    # The injected check is a dependency, never a client-visible parameter.
    names = [parameter["name"] for parameter in operation["parameters"]]
    assert names == ["article_id", "If-Match"]


def test_dependency_form_routes_document_security(app: FastAPI) -> None:
    operation = app.openapi()["paths"]["/api/v1/rbac/roles"]["post"]

    assert operation["security"]
