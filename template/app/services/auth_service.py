"""Login sessions, token refresh with JTI rotation, revocation, and request authentication.

Flow: login opens an `AuthSession` and issues an access token naming it (`sid`) with
a fresh JTI. Refresh exchanges the session secret plus the session's *current* access
token for a new token, moving the session to the new JTI with an atomic
compare-and-set. Presenting an older JTI is a replay: the session is revoked. An access
token replaced by a refresh goes on a deny-list in the cache until it would have
expired. A session that ends (logout, logout everywhere, a password change or reset,
deactivation, erasure, a replay) gets an end marker in the cache for as long as any
token of it could still be unexpired: every access token naming the session is refused
from then on, on every instance, the tokens of refreshes that raced with the ending
included (the deny-list alone only knows the JTIs read before they committed).

Authenticating a request costs one cache round trip: the deny-list entry, the session's
end marker, the user's cached snapshot (profile, roles and resolved permissions), the
global permissions version and, with read replicas, the user's mark as a recent writer
are read together, and the request is counted against the caller's rate limit in the
same trip; the database is only read when the snapshot is missing or older than the
latest change to roles and grants.
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

from app.core.cache import hash_tag
from app.core.rate_limit import RequestWindow, RouteLimit
from app.core.replicas import writer_mark_key
from app.core.resources import Resources
from app.core.security import TokenClaims
from app.exceptions import (
    ConflictException,
    IncorrectPasswordException,
    InvalidTokenException,
    NotFoundException,
    UnauthorizedException,
)
from app.models.auth_session import AuthSession
from app.models.base import utcnow
from app.models.user import User
from app.schemas.user import UserCreate
from app.services import one_time_tokens
from app.services.mail_service import MailService
from app.services.one_time_tokens import TokenPurpose
from app.services.password_policy import PasswordPolicy
from app.services.principal import Caller, Principal
from app.services.user_service import (
    PERMISSIONS_VERSION_KEY,
    cached_snapshot,
    normalize_email,
    user_service,
    user_snapshot_key,
)

# Sessions past the per-account limit ended by one login (`_end_sessions_past_limit`).
SESSION_TRIM_BATCH = 100


def denylist_key(jti: str) -> str:
    return f"auth:deny:{jti}"


def session_ended_key(session_id: uuid.UUID) -> str:
    return f"auth:session-ended:{session_id}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def known_client_key(account: str, address: str) -> str:
    """Marks a client address the account logged in from (see `_count_credential_attempt`)."""
    return f"auth:known-client:{digest(f'{account} {address}')}"


def rate_limit_caller(user_id: uuid.UUID | None, client_address: str | None) -> str:
    """Whom a request is counted against: the user when the token is valid, else the
    client address. Its id is the counters' hash tag: on a Redis Cluster the counters
    share a slot with each other and with the user's snapshot, so one script reads them."""
    if user_id is not None:
        return f"user:{hash_tag(str(user_id))}"
    return f"ip:{hash_tag(client_address or 'unknown')}"


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

    def cache_keys(self, *, with_writer_mark: bool) -> list[str]:
        """What authenticating it reads: its deny-list entry, its session's end marker,
        the user, the version and, with read replicas, the user's mark as a recent writer."""
        keys = [
            denylist_key(self.claims.jti),
            session_ended_key(self.session_id),
            user_snapshot_key(self.user_id),
            PERMISSIONS_VERSION_KEY,
        ]
        return [*keys, writer_mark_key(self.user_id)] if with_writer_mark else keys


class AuthService:
    def __init__(self, resources: Resources) -> None:
        self.settings = resources.settings
        self.session_factory = resources.session_factory
        self.cache = resources.cache
        self.tokens = resources.tokens
        self.hasher = resources.password_hasher
        self.rate_limiter = resources.rate_limiter
        self.replicas = resources.replicas

    # Sessions ---------------------------------------------------------------

    async def login(
        self, db: AsyncSession, email: str, password: str, client: ClientInfo
    ) -> IssuedSession:
        """Open a session for these credentials.

        Limits (OWASP ASVS 5.0 V6.3, NIST SP 800-63B-4 3.2.2), reserved before the
        password is checked so that parallel requests cannot outrun them: every attempt
        counts against the client address, the account from that client and the account
        overall (not from a client the account logged in from before); a success clears
        the account+client count, so guesses from elsewhere cannot lock the owner out
        (429 with Retry-After once used up).
        """
        await self._count_credential_attempt(email, client)
        user = await user_service.authenticate(db, email, password, self.hasher)
        await self._clear_credential_failures(email, client)
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
        """End every session of the user, every login in flight (the user row is written
        and locked first, so no session can open unseen meanwhile) and every outstanding
        reset or verification link: every account-wide session end (logout-all, password
        change or reset, deactivation) goes through here."""
        await user_service.touch_credentials(db, user_id)
        sessions = await self.active_sessions(db, user_id)
        await self._revoke(db, sessions)
        await one_time_tokens.revoke_all(self.cache, user_id)
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
        self,
        db: AsyncSession,
        user_id: uuid.UUID,
        current_password: str,
        new_password: str,
        client: ClientInfo,
    ) -> None:
        """Check the current password (limited and counted as a login is; a wrong one is
        400 `incorrect_password`, not 401: the session itself is fine), then set the new."""
        user = await self.confirm_password(db, user_id, current_password, client)
        await self._set_password(db, user, new_password, field="new_password")

    async def confirm_password(
        self, db: AsyncSession, user_id: uuid.UUID, password: str, client: ClientInfo
    ) -> User:
        """The caller's user, once `password` is theirs (re-authentication before a
        sensitive change: OWASP ASVS 5.0 V6.2). Limited and counted as a login is; a
        wrong one is 400 `incorrect_password`."""
        user = await user_service.get_active(db, user_id)
        # Hand the connection back before hashing, as a login does: password checks
        # queued for bcrypt must not hold the pool (on SQLite they held every login).
        await db.commit()
        await self._count_credential_attempt(user.email, client)
        if not await self.hasher.verify(password, user.hashed_password):
            raise IncorrectPasswordException()
        await self._clear_credential_failures(user.email, client)
        return user

    # Registration -------------------------------------------------------------

    async def register(
        self, db: AsyncSession, data: UserCreate, client: ClientInfo, mailer: MailService
    ) -> None:
        """Create the account with a welcome email, or tell the owner of an address that has
        one already: the caller answers the same either way, and both paths hash the
        password, so neither the answer nor its time tells them apart. Limited like the
        email links (one email per attempt). The email is written with the account, in
        its transaction: no account, no email."""
        email = normalize_email(data.email)
        await PasswordPolicy.from_settings(self.settings).ensure_acceptable(
            data.password, email=email
        )
        await self._limit_email_links(email, client)
        if await user_service.get_by_email(db, email) is not None:
            await self.hasher.hash(data.password)
            await self._tell_owner(db, email, mailer)
            return
        user_id = uuid.uuid4()
        mailer.send_welcome(db, email, *await self._verification_link(user_id))
        try:
            await user_service.register(
                db, data, self.hasher, [self.settings.default_role], user_id=user_id
            )
        except ConflictException:  # registered concurrently: the same answer again
            await db.rollback()  # and the welcome goes with the account that was not made
            await self._tell_owner(db, email, mailer)

    async def _tell_owner(self, db: AsyncSession, email: str, mailer: MailService) -> None:
        mailer.send_account_exists(db, email)
        await db.commit()

    # Email verification and password reset ------------------------------------

    async def request_email_verification(
        self, db: AsyncSession, email: str, client: ClientInfo, mailer: MailService
    ) -> None:
        """Email a verification link, unless there is nothing to verify.

        The caller answers the same either way, so the endpoint reveals no accounts.
        """
        await self._limit_email_links(email, client)
        user = await user_service.get_by_email(db, email)
        if user is None or not user.is_active or user.is_verified:
            return
        mailer.send_verification(db, user.email, *await self._verification_link(user.id))
        await db.commit()

    async def _verification_link(self, user_id: uuid.UUID) -> tuple[str, str]:
        """A new verification link for the user, and the token in it."""
        ttl = self.settings.email_verification_ttl_minutes * 60
        token = await one_time_tokens.issue(self.cache, TokenPurpose.VERIFY_EMAIL, user_id, ttl)
        return f"{self.settings.public_url}/verify-email?token={token}", token

    async def confirm_email(self, db: AsyncSession, token: str) -> None:
        user_id = await one_time_tokens.consume(self.cache, TokenPurpose.VERIFY_EMAIL, token)
        if user_id is None:
            raise InvalidTokenException()
        user = await self._holder_of_link(db, user_id)
        user.is_verified = True
        await user_service.commit_profile_change(db, self.cache, user.id)

    async def request_password_reset(
        self, db: AsyncSession, email: str, client: ClientInfo, mailer: MailService
    ) -> None:
        """Email a reset link, unless the account is unknown or inactive (same answer)."""
        await self._limit_email_links(email, client)
        user = await user_service.get_by_email(db, email)
        if user is None or not user.is_active:
            return
        ttl = self.settings.password_reset_ttl_minutes * 60
        token = await one_time_tokens.issue(self.cache, TokenPurpose.RESET_PASSWORD, user.id, ttl)
        link = f"{self.settings.public_url}/reset-password?token={token}"
        mailer.send_password_reset(db, user.email, link, token)
        await db.commit()

    async def reset_password(self, db: AsyncSession, token: str, new_password: str) -> None:
        """Set a new password with a reset link. The policy is checked before the link is
        used up, so a refused password (422) leaves the link working for a better one."""
        user_id = await one_time_tokens.peek(self.cache, TokenPurpose.RESET_PASSWORD, token)
        if user_id is None:
            raise InvalidTokenException()
        user = await self._holder_of_link(db, user_id)
        await self._ensure_acceptable(user, new_password, field="new_password")
        if await one_time_tokens.consume(self.cache, TokenPurpose.RESET_PASSWORD, token) is None:
            raise InvalidTokenException()  # used by a concurrent request meanwhile
        await self._set_password(db, user, new_password, field="new_password")

    @staticmethod
    async def _holder_of_link(db: AsyncSession, user_id: uuid.UUID) -> User:
        """The active user a reset or verification link was issued for. A link of an
        inactive or erased account answers exactly as an invalid one (400), so it tells
        nothing about the account and never works again, even after reactivation."""
        user = await db.get(User, user_id)
        if user is None or not user.is_active:
            raise InvalidTokenException()
        return user

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
        with_writer_mark = self.replicas.configured
        keys = token.cache_keys(with_writer_mark=with_writer_mark) if token is not None else []
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
        user_id = token.user_id if token is not None else None
        caller = rate_limit_caller(user_id, client_address)
        limit = settings.rate_limit_per_user if token is not None else settings.rate_limit_per_ip
        if route is not None:
            caller, limit = f"{route.bucket}:{caller}", route.limit
        return RequestWindow.at(limit, caller, time.time())

    async def _principal(
        self,
        token: VerifiedToken,
        denied: str | None,
        session_ended: str | None,
        cached_user: str | None,
        permissions_version: str | None,
        writer_mark: str | None = None,
    ) -> Principal:
        if denied is not None:
            raise UnauthorizedException("The access token has been revoked")
        if session_ended is not None:
            raise UnauthorizedException("The session has ended; log in again")
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
            recent_writer=writer_mark is not None,
        )

    async def _set_password(
        self, db: AsyncSession, user: User, new_password: str, *, field: str
    ) -> None:
        """A new password (checked against the policy) ends every session and every
        outstanding reset or verification link: whoever knew the old one is logged out."""
        await self._ensure_acceptable(user, new_password, field=field)
        user.hashed_password = await self.hasher.hash(new_password)
        await self.logout_all(db, user.id)  # commits the new hash, ends sessions and links

    async def _ensure_acceptable(self, user: User, password: str, *, field: str) -> None:
        await PasswordPolicy.from_settings(self.settings).ensure_acceptable(
            password, email=user.email, field=field
        )

    async def _count_credential_attempt(self, email: str, client: ClientInfo) -> None:
        """Reserve an attempt at a password, before any hashing: one against the client
        address, and one failure against the account from that client and against the
        account overall, each counted atomically (the moving window's check-and-add is one
        Redis script) and refused (429) once the limit is used up. A burst sent in
        parallel therefore gets no more checks than the limit; a success gives back the
        account+client reservations (`_clear_credential_failures`).

        A client address the account logged in from within the session lifetime is not
        counted against the account overall (OWASP Authentication Cheat Sheet, "device
        cookies", keyed here by address): guesses from many addresses can use that
        budget up for new clients, never for the owner's known ones, which stay bound by
        the account+client limit (README.md, "Rate limits"; the trade-off is in the
        template's docs/security-model.md).
        """
        settings, address = self.settings, client.ip_address
        account = normalize_email(email)
        await self.rate_limiter.hit(
            settings.login_rate_limit_per_ip, "login-ip", address or "unknown"
        )
        await self.rate_limiter.hit(
            settings.login_rate_limit_per_account, "login-failures", account, address or "unknown"
        )
        if address is None or not await self.cache.get(known_client_key(account, address)):
            await self.rate_limiter.hit(
                settings.login_failure_limit_per_account, "login-failures-account", account
            )

    async def _clear_credential_failures(self, email: str, client: ClientInfo) -> None:
        """After a right password: the account+client failures are forgotten and the
        client address becomes a known one of the account (for the session lifetime)."""
        account, address = normalize_email(email), client.ip_address
        await self.rate_limiter.clear(
            self.settings.login_rate_limit_per_account,
            "login-failures",
            account,
            address or "unknown",
        )
        if address is not None:
            ttl = self.settings.session_lifetime_days * 24 * 3600
            await self.cache.set(known_client_key(account, address), "1", ttl)

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
        await self._end_sessions_past_limit(db, user.id)
        return IssuedSession(
            session_id=session.id,
            session_secret=secret,
            access_token=access.token,
            access_expires_at=access.expires_at,
            session_expires_at=session.expires_at,
        )

    async def _end_sessions_past_limit(self, db: AsyncSession, user_id: uuid.UUID) -> None:
        """At most SESSIONS_MAX_PER_USER sessions open per account (OWASP ASVS 5.0 V7.1.2):
        past it, the least recently used are ended (at most SESSION_TRIM_BATCH a login, so
        each login's work stays bounded whatever an account held before)."""
        excess = await db.scalars(
            select(AuthSession)
            .where(
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > utcnow(),
            )
            .order_by(AuthSession.last_used_at.desc(), AuthSession.id)
            .offset(self.settings.sessions_max_per_user)
            .limit(SESSION_TRIM_BATCH)
        )
        sessions = list(excess)
        if sessions:
            await self._revoke(db, sessions)

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
        """End the sessions: revoked in the database, then marked ended in the cache.

        The marker outlives every token of the session: a refresh that committed before
        the revocation issued a token expiring at most one lifetime from now, and none
        can commit after it (the compare-and-set requires an unrevoked row).
        """
        now = utcnow()
        for session in sessions:
            session.revoked_at = now
        await db.commit()
        await self.mark_sessions_ended([session.id for session in sessions])

    async def mark_sessions_ended(self, session_ids: Sequence[uuid.UUID]) -> None:
        ttl = int(self.tokens.lifetime.total_seconds()) + self.settings.jwt_leeway_seconds + 1
        for session_id in session_ids:
            await self.cache.set(session_ended_key(session_id), "1", ttl)

    async def _deny(self, jti: str, expires_at: datetime) -> None:
        remaining = int((expires_at - utcnow()).total_seconds()) + self.settings.jwt_leeway_seconds
        if remaining > 0:
            await self.cache.set(denylist_key(jti), "1", remaining)
