"""A request body is sent as the media type its route takes, or refused with 415 (RFC 9110,
15.5.16), in the common error shape.

A route that takes a JSON body needs `Content-Type: application/json` (or a `+json` type,
RFC 6839) and, if it names a charset, UTF-8 (RFC 8259, 8.1: JSON exchanged between
systems is UTF-8). A body sent as `text/plain`, or with no `Content-Type` at all, would
otherwise get a 422 that blames the body's shape rather than its type, and
`charset=latin-1` would be decoded as UTF-8 all the same. A route that declares another
type in the OpenAPI document (the upload: `multipart/form-data`) takes that type only.
A request without a body is not checked: its route answers that the body is missing.

`app.routes.api_route` makes the check, after the caller's own checks and before the
body is read.
"""

from collections.abc import Collection

from starlette.datastructures import Headers

from app.exceptions import UnsupportedMediaTypeException

JSON = "application/json"
_UTF_8 = frozenset({"utf-8", "utf8"})


def _split(content_type: str) -> tuple[str, dict[str, str]]:
    """`Type/Sub; name="value"` -> ("type/sub", {"name": "value"}) (RFC 9110, 8.3.1)."""
    media_type, *parameters = content_type.split(";")
    named = {}
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        named[name.strip().lower()] = value.strip().strip('"')
    return media_type.strip().lower(), named


def is_json_media_type(content_type: str) -> bool:
    """Whether a `Content-Type` value is JSON in UTF-8 (parameters other than charset
    are ignored)."""
    kind, parameters = _split(content_type)
    if not (kind == JSON or (kind.startswith("application/") and kind.endswith("+json"))):
        return False
    return parameters.get("charset", "utf-8").lower() in _UTF_8


def _has_body(headers: Headers) -> bool:
    """Whether the request carries a body (RFC 9112, 6.3): a `Content-Length` above 0,
    or a body of unknown length (`Transfer-Encoding`)."""
    if "transfer-encoding" in headers:
        return True
    return headers.get("content-length", "0").strip() not in ("", "0")


def require_media_type(headers: Headers, accepted: Collection[str]) -> None:
    """Refuse (415 `unsupported_media_type`) a body that is not of an `accepted` media
    type (`application/json` accepts every JSON type in UTF-8, see `is_json_media_type`)."""
    if not _has_body(headers):
        return
    content_type = headers.get("content-type")
    if content_type is not None:
        kind, _ = _split(content_type)
        if kind in accepted and kind != JSON:
            return
        if JSON in accepted and is_json_media_type(content_type):
            return
    expected = " or ".join(
        f"`{media_type}`" + (" (UTF-8)" if media_type == JSON else "")
        for media_type in sorted(accepted)
    )
    raise UnsupportedMediaTypeException(
        f"This route takes a body of type {expected}: send it with that `Content-Type`",
        details={"allowed": sorted(accepted)},
    )
