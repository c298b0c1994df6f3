"""The OpenAPI document says what the server does (`app.routes.openapi`).

Generated clients trust it: an error documented in another shape, a status left out or a
property marked required that `fields=` drops breaks them at run time.
"""

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Response
from fastapi.routing import APIRoute, iter_route_contexts

from app.core.config import Settings
from app.core.resources import Resources
from tests.helpers import API, create_article, error_of, login_as

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
            if path.startswith(API) and int(status) >= 400 and method != "head":
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


def test_every_operation_parameter_and_schema_is_described(document: dict[str, Any]) -> None:
    undescribed = [
        f"{method} {path}"
        for path, method, operation in _operations(document)
        if not operation.get("description")
    ]
    undescribed += [
        f"{method} {path} {parameter['name']}"
        for path, method, operation in _operations(document)
        for parameter in operation.get("parameters", [])
        if not parameter.get("description")
    ]
    undescribed += [
        name
        for name, schema in document["components"]["schemas"].items()
        if not schema.get("description")
    ]
    assert undescribed == []


def test_every_get_has_its_head_without_a_body(document: dict[str, Any]) -> None:
    """HEAD is answered wherever GET is (`app.core.head_requests`), and documented so:
    the GET's parameters, security and statuses, no content."""
    gets = 0
    for path, item in document["paths"].items():
        assert ("get" in item) == ("head" in item), path
        if "get" not in item:
            continue
        gets += 1
        get, head = item["get"], item["head"]
        assert head["operationId"] == f"{get['operationId']}_head"
        assert head.get("parameters") == get.get("parameters")
        assert head["security"] == get["security"]
        assert set(head["responses"]) == set(get["responses"]), path
        for status, response in head["responses"].items():
            assert "content" not in response, (path, status)
            assert response["headers"] == get["responses"][status]["headers"]
    assert gets >= 15


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


# Values of `fields` on either side of the grammar: names, spaces, commas, case, nesting.
FIELDS_CANDIDATES = (
    "id",
    " id , title ",
    "author",
    "author.id,author.full_name",
    "id,id",
    "title,,id",
    "id,",
    ",",
    "",
    "\tid",
    "ID",
    "author.",
    "author.email",
    "authorid",
    "id;title",
    "id title",
)


async def test_fields_takes_exactly_what_its_documented_pattern_admits(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    resources: Resources,
    document: dict[str, Any],
) -> None:
    """A `fields` value the document's pattern admits is answered 200, any other 422, on
    every operation that takes `fields` (schemathesis sends what the pattern admits and
    expects it taken)."""
    article = await create_article(client, auth_headers)
    admin = await login_as(client, resources, "admin")
    checked = 0
    for path, method, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["name"] != "fields":
                continue
            [text] = [form for form in parameter["schema"]["anyOf"] if form["type"] == "string"]
            pattern = re.compile(text["pattern"])
            url = path.replace("{article_id}", article["id"])
            for value in FIELDS_CANDIDATES:
                response = await client.request(
                    method, url, params={"fields": value}, headers=admin
                )
                admitted = pattern.search(value) is not None
                assert response.status_code == (200 if admitted else 422), (path, value)
                checked += 1
    assert checked >= 4 * len(FIELDS_CANDIDATES)


async def test_query_text_the_server_refuses_is_refused_by_the_document(
    client: httpx.AsyncClient, resources: Resources, document: dict[str, Any]
) -> None:
    """Every query string parameter's text form states what the server refuses in it (a
    NUL character: `app.schemas.request`): a value the document admits must not be a 422
    (schemathesis sends such values and expects them taken)."""
    admin = await login_as(client, resources, "admin")
    checked = 0
    for path, method, operation in _operations(document):
        if method != "get" or "{" in path:
            continue
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query":
                continue
            schema = parameter["schema"]
            for text in (schema, *schema.get("anyOf", ())):
                if text.get("type") != "string" or {"format", "enum"} & text.keys():
                    continue
                assert "pattern" in text, (path, parameter["name"])
                assert re.search(text["pattern"], "a\x00b") is None, (path, parameter["name"])
                response = await client.get(
                    path, params={parameter["name"]: "a\x00b"}, headers=admin
                )
                error_of(response, 422)
                checked += 1
    assert checked >= 6  # cursor, fields and a filter on each list


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


def test_routes_answering_204_send_no_content_type(app: FastAPI) -> None:
    routes = [context.original_route for context in iter_route_contexts(app.routes)]
    no_content = [r for r in routes if isinstance(r, APIRoute) and r.status_code == 204]

    assert no_content, "expected routes answering 204"
    for route in no_content:
        assert route.response_class is Response, route.path


async def test_a_204_has_no_content_type(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    article = await create_article(client, auth_headers)

    deleted = await client.delete(f"{API}/articles/{article['id']}", headers=auth_headers)
    logged_out = await client.post(f"{API}/auth/logout", headers=auth_headers)

    for response in (deleted, logged_out):
        assert response.status_code == 204
        assert response.content == b""
        assert "content-type" not in response.headers


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
