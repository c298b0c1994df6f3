"""The OpenAPI document says what the server does (`app.routes.openapi`).

Generated clients trust it: an error documented in another shape, a status left out or a
property marked required that `fields=` drops breaks them at run time.
"""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from tests.helpers import API, create_article, error_of

ERROR_REF = "#/components/schemas/ErrorResponse"


@pytest.fixture
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_every_error_is_documented_in_the_shape_the_service_sends(
    document: dict[str, Any],
) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            if path.startswith(API) and int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (method, path, status)
            assert "X-Request-ID" in response["headers"], (method, path, status)


def test_statuses_come_from_the_dependencies_and_the_routes(document: dict[str, Any]) -> None:
    paths = document["paths"]
    read = paths[API + "/articles/{article_id}"]["get"]["responses"]
    # The caller (429, 503 cache), the token (401), the permission (403), the route's own
    # 404, the parameters (422) and the conditional GET (304).
    assert set(read) == {"200", "304", "401", "403", "404", "422", "429", "503"}
    assert set(read["429"]["headers"]) >= {"Retry-After", "RateLimit-Limit"}
    assert "ETag" in read["200"]["headers"]
    register = paths[f"{API}/auth/register"]["post"]
    assert {"400", "413", "422"} <= set(register["responses"])
    assert "409" not in register["responses"]  # a taken address answers like a new one
    assert "401" not in register["responses"]
    assert register["security"] == []


def test_new_passwords_are_documented_with_the_policy_lengths(
    document: dict[str, Any], settings: Settings
) -> None:
    """The document carries the settings' PASSWORD_MIN_LENGTH / PASSWORD_MAX_LENGTH (15 and
    128 by default), which the server enforces, not the schemas' 8 and 1024."""
    schemas = document["components"]["schemas"]
    new_passwords = [
        schemas["UserCreate"]["properties"]["password"],
        schemas["PasswordChange"]["properties"]["new_password"],
    ]
    for field in new_passwords:
        assert field["minLength"] == settings.password_min_length
        assert field["maxLength"] == settings.password_max_length


def test_json_bodies_document_415(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        if "application/json" in operation.get("requestBody", {}).get("content", {}):
            assert "415" in operation["responses"], (method, path)


def test_operation_ids_are_named_for_the_resource_and_action(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(ids) == len(set(ids))
    assert {"articles_create", "articles_list", "files_upload", "users_read_me"} <= set(ids)
    for _, _, operation in _operations(document):
        assert operation["operationId"].startswith(f"{operation['tags'][0]}_")
        assert operation["description"]


def test_sort_orders_have_member_names(document: dict[str, Any]) -> None:
    (sort,) = [
        parameter
        for parameter in document["paths"][f"{API}/articles"]["get"]["parameters"]
        if parameter["name"] == "sort"
    ]
    names = dict(zip(sort["schema"]["enum"], sort["schema"]["x-enum-varnames"], strict=True))
    assert names["-created_at"] == "CREATED_AT_DESC"


def test_fields_responses_are_documented_as_partial(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    page = document["paths"][f"{API}/articles"]["get"]["responses"]["200"]
    ref = page["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/PartialArticleSummaryPage")
    assert "required" not in schemas["PartialArticleSummary"]
    assert set(schemas["PartialArticleSummaryPage"]["required"]) >= {"items", "next_cursor"}


def test_fields_examples_are_valid_for_their_endpoint(document: dict[str, Any]) -> None:
    for path in (f"{API}/articles", f"{API}/users"):
        (fields,) = [
            parameter
            for parameter in document["paths"][path]["get"]["parameters"]
            if parameter["name"] == "fields"
        ]
        example = fields["schema"]["examples"][0]
        assert ("author" in example) == (path.endswith("/articles")), example


def test_patch_schemas_do_not_offer_null_where_it_is_refused(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["ArticleUpdate"]["properties"]["title"]["type"] == "string"
    assert schemas["RoleUpdate"]["properties"]["name"]["type"] == "string"
    permissions = schemas["RoleCreate"]["properties"]["permissions"]["items"]
    assert "articles:read" in permissions["enum"]


async def test_title_null_is_refused_as_documented(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    article = await create_article(client, auth_headers)

    response = await client.patch(
        f"{API}/articles/{article['id']}", json={"title": None}, headers=auth_headers
    )

    error_of(response, 422, "request_validation_error")


async def test_a_number_is_not_a_date_time_filter(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await client.get(
        f"{API}/articles", params={"published_before": "0.5"}, headers=auth_headers
    )

    error_of(response, 422, "request_validation_error")


async def test_allow_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.put(f"{API}/articles")

    error_of(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, HEAD, POST"


async def test_an_upload_takes_only_the_documented_field(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await client.post(
        f"{API}/files",
        files={"file": ("a.txt", b"hello", "text/plain")},
        data={"note": "not in the document"},
        headers=auth_headers,
    )

    error_of(response, 422, "validation_error")
