"""Single-use tokens with an expiry (email verification, password reset), kept in the cache.

Only a SHA-256 digest of each token is stored, so reading the cache reveals no usable
link; consuming is an atomic get-and-delete, so a token works exactly once even when
two requests race with it. Only the latest token of a purpose works for its user: each
new one supersedes the one before (the user's "latest" entry names its digest), and
`revoke_all` ends every outstanding one, as a password change by any path does
(OWASP ASVS 5.0 V6.4: reset secrets are single-use, short-lived and invalidated).
"""

import enum
import hashlib
import hmac
import secrets
import uuid

from app.core.cache import Cache


class TokenPurpose(enum.StrEnum):
    VERIFY_EMAIL = "verify-email"
    RESET_PASSWORD = "reset-password"  # noqa: S105 - a purpose label, not a secret


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _key(purpose: TokenPurpose, token_digest: str) -> str:
    return f"ott:{purpose}:{token_digest}"


def _latest_key(purpose: TokenPurpose, user_id: uuid.UUID) -> str:
    return f"ott-latest:{purpose}:{user_id}"


async def issue(cache: Cache, purpose: TokenPurpose, user_id: uuid.UUID, ttl_seconds: int) -> str:
    """A new token for the user; any earlier one of the same purpose stops working."""
    token = secrets.token_urlsafe(32)
    token_digest = _digest(token)
    await cache.set(_latest_key(purpose, user_id), token_digest, ttl_seconds)
    await cache.set(_key(purpose, token_digest), str(user_id), ttl_seconds)
    return token


def token_digest(token: str) -> str:
    """What the store keeps of a token (SHA-256, hex): enough to check it, not to use it."""
    return _digest(token)


async def works(cache: Cache, purpose: TokenPurpose, digest: str) -> bool:
    """Whether the token with this `digest` would still be accepted: issued, not used,
    not expired, not superseded by a newer one, not revoked."""
    value = await cache.get(_key(purpose, digest))
    if not value:
        return False
    return await _is_latest(cache, purpose, uuid.UUID(value), digest)


async def peek(cache: Cache, purpose: TokenPurpose, token: str) -> uuid.UUID | None:
    """The user the token was issued for, without using it up; None if unknown, used,
    expired or superseded. Check what the token is for with it, then `consume` it."""
    token_digest = _digest(token)
    value = await cache.get(_key(purpose, token_digest))
    if not value:
        return None
    user_id = uuid.UUID(value)
    return user_id if await _is_latest(cache, purpose, user_id, token_digest) else None


async def consume(cache: Cache, purpose: TokenPurpose, token: str) -> uuid.UUID | None:
    """The user the token was issued for, once; None if unknown, used, expired or superseded."""
    token_digest = _digest(token)
    value = await cache.pop(_key(purpose, token_digest))
    if not value:
        return None
    user_id = uuid.UUID(value)
    if not await _is_latest(cache, purpose, user_id, token_digest):
        return None
    await cache.delete(_latest_key(purpose, user_id))
    return user_id


async def _is_latest(
    cache: Cache, purpose: TokenPurpose, user_id: uuid.UUID, token_digest: str
) -> bool:
    latest = await cache.get(_latest_key(purpose, user_id))
    return latest is not None and hmac.compare_digest(latest, token_digest)


async def revoke_all(cache: Cache, user_id: uuid.UUID) -> None:
    """End every outstanding token of the user, of every purpose."""
    await cache.delete(*(_latest_key(purpose, user_id) for purpose in TokenPurpose))
