"""JSON responses the routes serialize themselves.

Returning a `Response` tells FastAPI the body is final: it skips validating the
value against `response_model` and encoding it again (the `response_model` still
documents the endpoint). Routes use these where that double work shows in profiles
(lists) or where the body's bytes matter (ETags).
"""

import hashlib
from typing import Any

import pydantic_core
from fastapi import Request, Response, status

JSON = "application/json"


def json_response(content: Any) -> Response:
    """`content` (dicts, lists, UUIDs, datetimes, enums...) serialized in one pass."""
    return Response(pydantic_core.to_json(content), media_type=JSON)


def conditional_json(request: Request, body: bytes) -> Response:
    """The body with an `ETag`, or an empty 304 when the client already holds it.

    Responses depend on who asks, so caches may keep them only privately and must
    check back each time (`no-cache`): a revalidation costs a 304, not the body.
    """
    etag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(body, media_type=JSON, headers=headers)


def _matches(if_none_match: str | None, etag: str) -> bool:
    # Weak comparison, as RFC 9110 prescribes for If-None-Match.
    if not if_none_match:
        return False
    candidates = {candidate.strip().removeprefix("W/") for candidate in if_none_match.split(",")}
    return "*" in candidates or etag in candidates
