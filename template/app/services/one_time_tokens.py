"""Single-use tokens with an expiry (email verification, password reset), kept in the cache.

Only a SHA-256 digest of each token is stored, so reading the cache reveals no usable
link; consuming is an atomic get-and-delete, so a token works exactly once even when
two requests race with it.
"""

import enum
import hashlib
import secrets
import uuid

from app.core.cache import Cache


class TokenPurpose(enum.StrEnum):
    VERIFY_EMAIL = "verify-email"
    RESET_PASSWORD = "reset-password"  # noqa: S105 - a purpose label, not a secret


def _key(purpose: TokenPurpose, token: str) -> str:
    return f"ott:{purpose}:{hashlib.sha256(token.encode()).hexdigest()}"


async def issue(cache: Cache, purpose: TokenPurpose, user_id: uuid.UUID, ttl_seconds: int) -> str:
    token = secrets.token_urlsafe(32)
    await cache.set(_key(purpose, token), str(user_id), ttl_seconds)
    return token


async def consume(cache: Cache, purpose: TokenPurpose, token: str) -> uuid.UUID | None:
    """The user the token was issued for, once; None if unknown, used or expired."""
    value = await cache.pop(_key(purpose, token))
    return uuid.UUID(value) if value else None
