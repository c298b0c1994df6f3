"""Schemathesis checks of what the OpenAPI document promises beyond its schemas, for the
fuzz runs (`tests/e2e/test_fuzz.py`, and the template's client tests, which load this
file through SCHEMATHESIS_HOOKS):

- `documented_error_code`: an error answer carries a `code` that its documented response
  names (`x-error-codes`, from `app.routes.openapi`);
- `refusals_follow_business_rules`: a request the document calls valid is refused with a
  400 or 422 only by a rule no JSON Schema can state, named below by its code. A 422
  `request_validation_error` for such a request means the document and the server
  disagree, whatever the operation;
- `documented_cookies`: a response sets cookies only where the document says so
  (schemathesis checks the documented headers, not the ones sent besides).
"""

import contextlib
from typing import Any

import schemathesis

# Schema-valid requests the business rules refuse, by operation id: (status, code).
BUSINESS_REFUSALS: dict[str, frozenset[tuple[int, str]]] = {
    # Tokens that were never issued.
    "auth_confirm_email": frozenset({(400, "invalid_token")}),
    "auth_reset_password": frozenset({(400, "invalid_token"), (422, "password_refused")}),
    # A current password the caller cannot know; new passwords the policy refuses as
    # common or guessable (its lengths are in the document).
    "auth_change_password": frozenset({(400, "incorrect_password"), (422, "password_refused")}),
    "users_delete_me": frozenset({(400, "incorrect_password")}),
    "auth_register": frozenset({(422, "password_refused")}),
    "users_create": frozenset({(422, "password_refused")}),
    # Cursors this endpoint did not issue (or with an offset).
    "articles_list": frozenset({(422, "invalid_cursor")}),
    "users_list": frozenset({(422, "invalid_cursor")}),
    "files_list": frozenset({(422, "invalid_cursor")}),
    # An article's state: published already, no content to publish or to keep; an
    # `If-Match` naming another version than the current one.
    "articles_publish": frozenset({(422, "validation_error"), (412, "precondition_failed")}),
    "articles_update": frozenset({(422, "validation_error"), (412, "precondition_failed")}),
    "articles_delete": frozenset({(412, "precondition_failed")}),
    # A file whose own type (its part's Content-Type) is not an allowed one.
    "files_upload": frozenset({(415, "unsupported_media_type")}),
}
# Statuses whose refusals the check leaves to the business rules above.
CHECKED_STATUSES = frozenset({400, 412, 415, 422})


def _code(response: schemathesis.Response) -> str | None:
    # Not JSON, or not the error shape: no code (a `with` reads alike on every Python).
    with contextlib.suppress(ValueError, KeyError, TypeError):
        body: Any = response.json()
        return str(body["error"]["code"])
    return None


def _operation_id(case: schemathesis.Case[Any]) -> str:
    """The operation's id; a HEAD operation's is its GET's (`<id>_head`)."""
    operation_id = str(case.operation.definition.raw.get("operationId", case.operation.label))
    return operation_id.removesuffix("_head") if case.method.upper() == "HEAD" else operation_id


@schemathesis.check
def documented_error_code(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """An error answer's `code` is one its documented response names."""
    responses = case.operation.definition.raw.get("responses", {})
    documented = responses.get(str(response.status_code), {}).get("x-error-codes")
    if documented is None:  # undocumented statuses are status_code_conformance's
        return None
    code = _code(response)
    if code not in documented:
        raise AssertionError(
            f"{response.status_code} `{code}` is not one of the documented codes {documented}"
        )
    return True


@schemathesis.check
def refusals_follow_business_rules(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """A valid request refused with 400, 412, 415 or 422 is refused by a named business
    rule."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    if response.status_code not in CHECKED_STATUSES:
        return None
    refusal = (response.status_code, _code(response))
    rules: frozenset[tuple[int, str | None]] = BUSINESS_REFUSALS.get(
        _operation_id(case), frozenset()
    )
    if case.method.upper() == "HEAD":  # no body, so no code: the status must be a rule's
        rules = frozenset((status, None) for status, _ in rules)
    if refusal not in rules:
        raise AssertionError(
            f"A request the document calls valid was refused with {refusal[0]} "
            f"`{refusal[1]}`, which no business rule of this operation explains: "
            f"{response.text[:500]}"
        )
    return True


@schemathesis.check
def documented_cookies(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """A `Set-Cookie` answer is one whose documented response lists `Set-Cookie`."""
    if "set-cookie" not in response.headers:
        return None
    responses = case.operation.definition.raw.get("responses", {})
    documented = responses.get(str(response.status_code), {}).get("headers", {})
    if "Set-Cookie" not in documented:
        raise AssertionError(f"{response.status_code} sets cookies its documentation does not name")
    return True
