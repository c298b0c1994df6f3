"""JSON responses the routes serialize themselves.

Returning a `Response` tells FastAPI the body is final: it skips validating the
value against `response_model` and encoding it again (the `response_model` still
documents the endpoint). Routes use these where that double work shows in profiles
(lists) or where the body's bytes matter (ETags).
"""

from typing import Any

import pydantic_core
from fastapi import Request, Response, status

from app.core.entity_tags import entity_tag, none_match

JSON = "application/json"


def json_response(content: Any) -> Response:
    """`content` (dicts, lists, UUIDs, datetimes, enums...) serialized in one pass."""
    return Response(pydantic_core.to_json(content), media_type=JSON)


def tagged_json(body: bytes) -> Response:
    """A representation just written, with its `ETag`: the tag to send back in
    `If-Match` on the next write, and the one a read would answer with."""
    return Response(body, media_type=JSON, headers={"ETag": entity_tag(body)})


def conditional_json(request: Request, body: bytes) -> Response:
    """The body with an `ETag`, or an empty 304 when the client already holds it.

    Responses depend on who asks, so caches may keep them only privately and must
    check back each time (`no-cache`): a revalidation costs a 304, not the body.
    """
    etag = entity_tag(body)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if not none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(body, media_type=JSON, headers=headers)
