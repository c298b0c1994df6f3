"""Login sessions, token refresh with JTI rotation, revocation, and request authentication.

Flow: login opens an `AuthSession` and issues an access token naming it (`sid`) with
a fresh JTI. Refresh exchanges the session secret plus the session's *current* access
token for a new token, moving the session to the new JTI with an atomic
compare-and-set. Presenting an older JTI is a replay: the session is revoked. Every
access token that stops being valid early (rotated, logged out, revoked) goes on a
deny-list in the cache until it would have expired, so all instances refuse it at once.

Authenticating a request costs one cache round trip: the deny-list entry, the user's
cached snapshot (profile, roles and resolved permissions) and the global permissions
version are read together, and the request is counted against the caller's rate limit
in the same trip; the database is only read when the snapshot is missing or older than
the latest change to roles and grants.
"""

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.rate_limit import RequestWindow, RouteLimit
from app.core.resources import Resources
from app.core.security import TokenClaims
from app.exceptions import (
    ConflictException,
    InvalidTokenException,
    NotFoundException,
    UnauthorizedException,
)
from app.models.auth_session import AuthSession
from app.models.base import utcnow
from app.models.user import User
from app.services import one_time_tokens
from app.services.one_time_tokens import TokenPurpose
from app.services.principal import Caller, Principal
from app.services.user_service import (
    PERMISSIONS_VERSION_KEY,
    cached_snapshot,
    normalize_email,
    user_service,
    user_snapshot_key,
)


def denylist_key(jti: str) -> str:
    return f"auth:deny:{jti}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip_address: str | None
    user_agent: str | None


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """What a client receives at login or refresh. The secret exists only here, never stored."""

    session_id: uuid.UUID
    session_secret: str
    access_token: str
    access_expires_at: datetime
    session_expires_at: datetime


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """An access token whose signature and expiry are good; not yet checked for revocation."""

    claims: TokenClaims
    user_id: uuid.UUID
    session_id: uuid.UUID

    def cache_keys(self) -> list[str]:
        """What authenticating it reads: its deny-list entry, the user, the version."""
        return [
            denylist_key(self.claims.jti),
            user_snapshot_key(self.user_id),
            PERMISSIONS_VERSION_KEY,
        ]


class AuthService:
    def __init__(self, resources: Resources) -> None:
        self.settings = resources.settings
        self.session_factory = resources.session_factory
        self.cache = resources.cache
        self.tokens = resources.tokens
        self.hasher = resources.password_hasher
        self.rate_limiter = resources.rate_limiter

    # Sessions ---------------------------------------------------------------

    async def login(
        self, db: AsyncSession, email: str, password: str, client: ClientInfo
    ) -> IssuedSession:
        await self.rate_limiter.hit(
            self.settings.login_rate_limit_per_ip, "login-ip", client.ip_address or "unknown"
        )
        await self.rate_limiter.hit(
            self.settings.login_rate_limit_per_account, "login-account", normalize_email(email)
        )
        user = await user_service.authenticate(db, email, password, self.hasher)
        return await self._open_session(db, user, client)

    async def refresh(
        self, db: AsyncSession, session_id: uuid.UUID, session_secret: str, access_token: str
    ) -> IssuedSession:
        # An expired token is fine here; a tampered or foreign one is not.
        claims = self.tokens.decode(access_token, allow_expired=True)
        if claims.session_id != str(session_id):
            raise UnauthorizedException("The access token does not belong to this session")
        session = await db.get(AuthSession, session_id)
        if session is None or not hmac.compare_digest(session.secret_hash, digest(session_secret)):
            raise UnauthorizedException("Invalid session")
        now = utcnow()
        if not self._is_open(session, now):
            raise UnauthorizedException("The session has ended; log in again")
        if claims.jti != session.current_jti:
            await self._reject_stale_token(db, session, claims.jti, now)
        user = await user_service.get_active(db, session.user_id)

        access = self.tokens.issue(str(user.id), str(session.id))
        # Compare-and-set: of two refreshes racing with the same token, exactly one matches.
        rotated = await db.execute(
            update(AuthSession)
            .where(
                AuthSession.id == session.id,
                AuthSession.current_jti == claims.jti,
                AuthSession.revoked_at.is_(None),
            )
            .values(
                current_jti=access.jti, previous_jti=claims.jti, rotated_at=now, last_used_at=now
            )
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[tuple[()]], rotated).rowcount != 1:
            await db.rollback()
            raise self._concurrent_refresh()
        await db.commit()
        await self._deny(claims.jti, claims.expires_at)
        return IssuedSession(
            session_id=session.id,
            session_secret=session_secret,
            access_token=access.token,
            access_expires_at=access.expires_at,
            session_expires_at=session.expires_at,
        )

    async def logout(self, db: AsyncSession, principal: Principal) -> None:
        session = await db.get(AuthSession, principal.session_id)
        if session is not None:
            await self._revoke(db, [session])
        # The token in hand is denied even if its session row is already gone.
        await self._deny(principal.jti, principal.token_expires_at)

    async def logout_all(self, db: AsyncSession, user_id: uuid.UUID) -> int:
        sessions = await self.active_sessions(db, user_id)
        await self._revoke(db, sessions)
        return len(sessions)

    async def active_sessions(self, db: AsyncSession, user_id: uuid.UUID) -> list[AuthSession]:
        now = utcnow()
        rows = await db.scalars(
            select(AuthSession)
            .where(
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
            .order_by(AuthSession.last_used_at.desc())
        )
        return [session for session in rows if self._is_open(session, now)]

    async def revoke_session(
        self, db: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID
    ) -> None:
        session = await db.get(AuthSession, session_id)
        # Someone else's session is reported as missing, so session ids do not leak.
        if session is None or session.user_id != user_id or session.revoked_at is not None:
            raise NotFoundException("Session not found")
        await self._revoke(db, [session])

    async def change_password(
        self, db: AsyncSession, user_id: uuid.UUID, current_password: str, new_password: str
    ) -> None:
        user = await user_service.get_active(db, user_id)
        if not await self.hasher.verify(current_password, user.hashed_password):
            raise UnauthorizedException("The current password is incorrect")
        await self._set_password(db, user, new_password)

    # Email verification and password reset ------------------------------------

    async def request_email_verification(
        self, db: AsyncSession, email: str, client: ClientInfo
    ) -> str | None:
        """The verification link to email, or None when there is nothing to verify.

        The caller answers the same either way, so the endpoint reveals no accounts.
        """
        await self._limit_email_links(email, client)
        user = await user_service.get_by_email(db, email)
        if user is None or not user.is_active or user.is_verified:
            return None
        ttl = self.settings.email_verification_ttl_minutes * 60
        token = await one_time_tokens.issue(self.cache, TokenPurpose.VERIFY_EMAIL, user.id, ttl)
        return f"{self.settings.public_url}/verify-email?token={token}"

    async def confirm_email(self, db: AsyncSession, token: str) -> None:
        user_id = await one_time_tokens.consume(self.cache, TokenPurpose.VERIFY_EMAIL, token)
        if user_id is None:
            raise InvalidTokenException()
        user = await user_service.get_active(db, user_id)
        user.is_verified = True
        await db.commit()
        await user_service.forget_snapshot(self.cache, user.id)

    async def request_password_reset(
        self, db: AsyncSession, email: str, client: ClientInfo
    ) -> str | None:
        """The reset link to email, or None for an unknown or inactive account (same answer)."""
        await self._limit_email_links(email, client)
        user = await user_service.get_by_email(db, email)
        if user is None or not user.is_active:
            return None
        ttl = self.settings.password_reset_ttl_minutes * 60
        token = await one_time_tokens.issue(self.cache, TokenPurpose.RESET_PASSWORD, user.id, ttl)
        return f"{self.settings.public_url}/reset-password?token={token}"

    async def reset_password(self, db: AsyncSession, token: str, new_password: str) -> None:
        user_id = await one_time_tokens.consume(self.cache, TokenPurpose.RESET_PASSWORD, token)
        if user_id is None:
            raise InvalidTokenException()
        user = await user_service.get_active(db, user_id)
        await self._set_password(db, user, new_password)

    # Request authentication -------------------------------------------------

    async def identify(
        self, access_token: str | None, client_address: str | None, route: RouteLimit | None
    ) -> Caller:
        """The caller behind a request, counted against their rate limit.

        One cache round trip reads the token's deny-list entry, the user's snapshot and
        the permissions version, and counts the request; a query runs only when the
        snapshot is missing or stale. Without a token, or with one that is refused, the
        caller is anonymous and counted by client address.
        """
        token: VerifiedToken | None = None
        rejection: UnauthorizedException | None = None
        if access_token is not None:
            try:
                token = self._verify(access_token)
            except UnauthorizedException as error:
                rejection = error
        keys = token.cache_keys() if token is not None else []
        window = self._rate_limit_window(token, client_address, route)
        status = None
        if window is None:
            values = await self.cache.get_many(*keys) if keys else []
        else:
            counted, count = await self.cache.get_many_and_count(
                [*keys, window.previous_key], window.current_key, window.ttl_seconds
            )
            *values, previous = counted
            status = window.status(int(previous or 0), count)
            if status.retry_after_seconds is not None:
                return Caller(None, rejection, status)
        if token is None:
            return Caller(None, rejection, status)
        try:
            principal = await self._principal(token, *values)
        except UnauthorizedException as error:
            return Caller(None, error, status)
        return Caller(principal, None, status)

    # Internals ----------------------------------------------------------------

    def _verify(self, access_token: str) -> VerifiedToken:
        claims = self.tokens.decode(access_token)
        try:
            return VerifiedToken(claims, uuid.UUID(claims.subject), uuid.UUID(claims.session_id))
        except ValueError as error:
            raise UnauthorizedException("Invalid access token") from error

    def _rate_limit_window(
        self, token: VerifiedToken | None, client_address: str | None, route: RouteLimit | None
    ) -> RequestWindow | None:
        settings = self.settings
        if not settings.rate_limit_enabled:
            return None
        if token is not None:
            caller, limit = f"user:{token.user_id}", settings.rate_limit_per_user
        else:
            caller, limit = f"ip:{client_address or 'unknown'}", settings.rate_limit_per_ip
        if route is not None:
            caller, limit = f"{route.bucket}:{caller}", route.limit
        return RequestWindow.at(limit, caller, time.time())

    async def _principal(
        self,
        token: VerifiedToken,
        denied: str | None,
        cached_user: str | None,
        permissions_version: str | None,
    ) -> Principal:
        if denied is not None:
            raise UnauthorizedException("The access token has been revoked")
        snapshot = cached_snapshot(cached_user, permissions_version)
        if snapshot is None:
            async with self.session_factory() as db:
                snapshot = await user_service.load_snapshot(
                    db, self.cache, token.user_id, permissions_version
                )
        if not snapshot.is_active:
            raise UnauthorizedException("User is inactive or no longer exists")
        claims = token.claims
        return Principal(
            user=snapshot,
            session_id=token.session_id,
            jti=claims.jti,
            token_expires_at=claims.expires_at,
        )

    async def _set_password(self, db: AsyncSession, user: User, new_password: str) -> None:
        """A new password ends every session: whoever knew the old one is logged out."""
        user.hashed_password = await self.hasher.hash(new_password)
        await self.logout_all(db, user.id)  # commits the new hash with the revocations

    async def _limit_email_links(self, email: str, client: ClientInfo) -> None:
        limit = self.settings.email_link_rate_limit
        await self.rate_limiter.hit(limit, "email-link-ip", client.ip_address or "unknown")
        await self.rate_limiter.hit(limit, "email-link-account", normalize_email(email))

    async def _open_session(
        self, db: AsyncSession, user: User, client: ClientInfo
    ) -> IssuedSession:
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        session = AuthSession(
            id=uuid.uuid4(),
            user_id=user.id,
            secret_hash=digest(secret),
            last_used_at=now,
            expires_at=now + timedelta(days=self.settings.session_lifetime_days),
            user_agent=(client.user_agent or "")[:255] or None,
            ip_address=client.ip_address,
        )
        access = self.tokens.issue(str(user.id), str(session.id))
        session.current_jti = access.jti
        db.add(session)
        await db.commit()
        return IssuedSession(
            session_id=session.id,
            session_secret=secret,
            access_token=access.token,
            access_expires_at=access.expires_at,
            session_expires_at=session.expires_at,
        )

    def _is_open(self, session: AuthSession, now: datetime) -> bool:
        idle_limit = timedelta(hours=self.settings.session_idle_timeout_hours)
        return (
            session.revoked_at is None
            and session.expires_at > now
            and session.last_used_at + idle_limit > now
        )

    async def _reject_stale_token(
        self, db: AsyncSession, session: AuthSession, jti: str, now: datetime
    ) -> None:
        race_window = timedelta(seconds=self.settings.refresh_race_window_seconds)
        just_rotated = session.rotated_at is not None and now - session.rotated_at <= race_window
        if jti == session.previous_jti and just_rotated:
            raise self._concurrent_refresh()
        await self._revoke(db, [session])
        raise UnauthorizedException("This token was already used to refresh; session revoked")

    @staticmethod
    def _concurrent_refresh() -> ConflictException:
        return ConflictException(
            "The session was refreshed by a concurrent request; use the token that request received"
        )

    async def _revoke(self, db: AsyncSession, sessions: Sequence[AuthSession]) -> None:
        now = utcnow()
        for session in sessions:
            session.revoked_at = now
        await db.commit()
        lifetime = self.tokens.lifetime
        for session in sessions:
            await self._deny(session.current_jti, now + lifetime)

    async def _deny(self, jti: str, expires_at: datetime) -> None:
        remaining = int((expires_at - utcnow()).total_seconds()) + self.settings.jwt_leeway_seconds
        if remaining > 0:
            await self.cache.set(denylist_key(jti), "1", remaining)
