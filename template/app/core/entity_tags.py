"""Entity tags and the conditional request headers that compare them (RFC 9110, 8.8.3 and
13.1).

A representation's tag is a hash of its bytes: equal bytes, equal tags, whoever asks.
`If-None-Match` (a cached read) compares weakly, `If-Match` (a write that must not undo
someone else's) strongly: a weak tag (`W/"..."`) never matches there.
"""

import hashlib


def entity_tag(body: bytes) -> str:
    """The strong entity tag of a representation: `"<32 hex digits>"`."""
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def _listed(header: str) -> list[str]:
    return [candidate.strip() for candidate in header.split(",") if candidate.strip()]


def none_match(if_none_match: str | None, etag: str) -> bool:
    """Whether `If-None-Match` lets a read through (false: answer 304); RFC 9110,
    13.1.2, weak comparison."""
    if not if_none_match:
        return True
    candidates = {candidate.removeprefix("W/") for candidate in _listed(if_none_match)}
    return not ("*" in candidates or etag in candidates)


def match(if_match: str | None, etag: str) -> bool:
    """Whether `If-Match` lets a write through (false: answer 412); RFC 9110, 13.1.1,
    strong comparison. `*` alone matches any current representation; no header,
    anything; a value that is neither `*` nor a list of entity tags (`*, "x"` among
    them) names no version, so matches nothing."""
    if if_match is None:
        return True
    candidates = _listed(if_match)
    return candidates == ["*"] or ("*" not in candidates and etag in candidates)
