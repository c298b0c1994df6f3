"""A JSON request body is sent as JSON, or refused with 415 (RFC 9110, 15.5.16).

Every route that takes a JSON body (FastAPI's `body_field`) needs `Content-Type:
application/json` (or a `+json` type, RFC 6839) and, if it names a charset, UTF-8
(RFC 8259, 8.1: JSON exchanged between systems is UTF-8). A body sent as `text/plain`
would otherwise get a 422 that blames the body's shape rather than its type, and
`charset=latin-1` would be decoded as UTF-8 all the same. A request that sends no
`Content-Type` at all is read as JSON (FastAPI's behaviour). The upload route reads
multipart itself and checks its own types.
"""

from fastapi import Request

from app.exceptions import UnsupportedMediaTypeException

_UTF_8 = frozenset({"utf-8", "utf8"})


def is_json_media_type(content_type: str) -> bool:
    """Whether a `Content-Type` value is JSON in UTF-8 (parameters other than charset
    are ignored)."""
    media_type, *parameters = content_type.split(";")
    kind = media_type.strip().lower()
    if not (
        kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))
    ):
        return False
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in _UTF_8:
            return False
    return True


async def require_json_body(request: Request) -> None:
    """Refuse (415 `unsupported_media_type`) a body that is not sent as JSON to a route
    that takes a JSON body. Declared on the app: every route runs it, first."""
    if getattr(request.scope.get("route"), "body_field", None) is None:
        return
    content_type = request.headers.get("content-type")
    if content_type is not None and not is_json_media_type(content_type):
        raise UnsupportedMediaTypeException(
            "This route takes a JSON body: send it as `Content-Type: application/json` (UTF-8)"
        )
