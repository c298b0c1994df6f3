"""Password hashing and access tokens.

Passwords: bcrypt, always in a thread of its own pool (bounded concurrency) that runs
at a lower CPU priority than the event loop, so a burst of logins can neither block
the loop nor take the CPU from the requests it serves. A hash waits for a thread only
as long as PASSWORD_HASH_MAX_WAIT_SECONDS (the hashes ahead of it, times the measured
seconds per hash) and behind at most PASSWORD_HASH_QUEUE_SIZE others: past either the
request is refused with 503 and Retry-After, so a flood of one caller's attempts cannot
delay everyone's login by more than that wait. bcrypt only reads the
first 72 bytes (and bcrypt 5 refuses longer input), so every password is first
reduced to a fixed 44-byte string: base64(SHA-256(password)). Long passphrases
are therefore verified exactly as typed, and no input length can raise.

Before that, a password is normalised as RFC 8265 prescribes for passwords (the PRECIS
OpaqueString profile, as NIST SP 800-63B section 5.1.1.2 asks): non-ASCII spaces
become U+0020 and the text is put in Unicode NFC, so the same password typed on
keyboards that compose accents differently (NFC `ñ` or NFD `n` + combining tilde)
is the same password. Hashes made before normalisation still verify: a password that
does not match in its normalised form is tried as typed, and `verify_and_update`
then returns a hash of the normalised form to store instead.

Access tokens: JWTs signed with HS256 only (the algorithm is pinned on decode,
so `alg: none` or a switched algorithm is rejected), with `sub`, `jti`, `iat`
and `exp` required, and issuer/audience checked when configured.
"""

import asyncio
import base64
import hashlib
import math
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TypeVar

import bcrypt
import jwt
from precis_i18n import get_profile

from app.core.config import Settings
from app.exceptions import ServerBusyException, UnauthorizedException, ValidationException

JWT_ALGORITHM = "HS256"
# `sid` ties every access token to the refresh session it was issued for.
REQUIRED_CLAIMS = ["sub", "sid", "jti", "iat", "exp"]
VERIFIED_TOKEN_CACHE_SIZE = 4096


_T = TypeVar("_T")

# How much lower than the event loop the hashing threads run (nice levels, Linux).
HASHING_NICENESS = 10


def _yield_the_cpu_to_the_event_loop() -> None:
    """Runs in each hashing thread as it starts. Linux schedules threads one by one,
    each with its own nice value: with a higher one, a thread busy with bcrypt gets
    the CPU only when the event loop does not want it. (Lowering a priority needs no
    privilege; raising it back would, hence threads of their own.)"""
    thread = threading.get_native_id()
    try:
        niceness = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, niceness + HASHING_NICENESS))
    except OSError:  # not Linux: priorities are per process there, so left alone
        pass


_OPAQUE_STRING = get_profile("OpaqueString")


def normalize_password(password: str) -> str | None:
    """`password` under RFC 8265's OpaqueString profile (section 4.2): non-ASCII spaces
    mapped to U+0020, then NFC. None when the profile disallows the text (control
    characters, unassigned code points, empty): no new password may be such text."""
    try:
        normalized: str = _OPAQUE_STRING.enforce(password)
    except UnicodeError:
        return None
    return normalized


class PasswordHasher:
    def __init__(
        self,
        rounds: int,
        max_concurrency: int,
        max_waiting: int = 16,
        max_wait_seconds: float = 2.0,
    ) -> None:
        self.rounds = rounds
        self._threads = ThreadPoolExecutor(
            max_workers=max_concurrency,
            thread_name_prefix="password-hashing",
            initializer=_yield_the_cpu_to_the_event_loop,
        )
        self._max_concurrency = max_concurrency
        # Hashes running or waiting for a thread, and how many of them may be at once.
        self._pending = 0
        self._max_pending = max_concurrency + max_waiting
        self._max_wait_seconds = max_wait_seconds
        self._seconds_per_hash = 0.25  # measured on every hash; a guess until the first

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _prehash(password: str) -> bytes:
        return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())

    def _hash_sync(self, password: str) -> str:
        salt = bcrypt.gensalt(rounds=self.rounds)
        return bcrypt.hashpw(self._prehash(password), salt).decode("ascii")

    def _verify_sync(self, password: str, hashed: str) -> bool:
        try:
            return bcrypt.checkpw(self._prehash(password), hashed.encode("ascii"))
        except ValueError:  # a malformed stored hash never authenticates
            return False

    async def _run(self, function: Callable[..., _T], *args: str) -> _T:
        """`function(*args)` in a hashing thread; ServerBusyException (503) when the
        queue of waiting hashes is full, or it would wait longer than `max_wait_seconds`
        for a thread (the hashes ahead of it, run `max_concurrency` at a time)."""
        waves_ahead = self._pending // self._max_concurrency
        if (
            self._pending >= self._max_pending
            or waves_ahead * self._seconds_per_hash > self._max_wait_seconds
        ):
            raise ServerBusyException(
                retry_after_seconds=max(1, math.ceil(waves_ahead * self._seconds_per_hash))
            )
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._threads, self._timed, function, *args
            )
        finally:
            self._pending -= 1

    def _timed(self, function: Callable[..., _T], *args: str) -> _T:
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            self._seconds_per_hash = time.perf_counter() - started

    async def hash(self, password: str) -> str:
        """The hash to store for a new password (normalised, see the module docstring).
        Raises ValidationException (422) for text RFC 8265 disallows in a password."""
        normalized = normalize_password(password)
        if normalized is None:
            raise ValidationException(
                "The password contains characters that are not allowed in a password "
                "(control characters or unassigned code points; RFC 8265)"
            )
        return await self._run(self._hash_sync, normalized)

    async def verify(self, password: str, hashed: str) -> bool:
        matches, _ = await self.verify_and_update(password, hashed)
        return matches

    async def verify_and_update(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """Whether `password` matches `hashed`, and a new hash to store in its place when
        `hashed` was made from the password as typed rather than normalised, or at another
        cost than `rounds` (BCRYPT_ROUNDS changed since); else None."""
        normalized = normalize_password(password)
        if normalized is not None and await self._run(self._verify_sync, normalized, hashed):
            if self._needs_rehash(hashed):
                return True, await self._run(self._hash_sync, normalized)
            return True, None
        if normalized == password or not await self._run(self._verify_sync, password, hashed):
            return False, None
        if normalized is None:  # made before the rule; it cannot be stored normalised
            return True, None
        return True, await self._run(self._hash_sync, normalized)

    def _needs_rehash(self, hashed: str) -> bool:
        """Whether `hashed` was made at another cost than `rounds` (upgrade it on login)."""
        parts = hashed.split("$")  # "$2b$12$<salt and hash>"
        return len(parts) != 4 or not parts[2].isdigit() or int(parts[2]) != self.rounds

    async def verify_dummy(self, password: str) -> None:
        """Spend the same time as a real check, so unknown accounts are not revealed by timing."""
        await self.verify(password, _dummy_hash(self.rounds))


@cache
def _dummy_hash(rounds: int) -> str:
    return bcrypt.hashpw(b"dummy-password-for-timing", bcrypt.gensalt(rounds=rounds)).decode()


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    session_id: str
    jti: str
    issued_at: datetime
    expires_at: datetime


class TokenCodec:
    def __init__(self, settings: Settings) -> None:
        self._key = settings.secret_key.get_secret_value()
        self._lifetime = timedelta(minutes=settings.access_token_expire_minutes)
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds
        self._verified: OrderedDict[str, TokenClaims] = OrderedDict()

    @property
    def lifetime(self) -> timedelta:
        return self._lifetime

    def issue(self, subject: str, session_id: str) -> AccessToken:
        now = datetime.now(UTC)
        expires_at = now + self._lifetime
        jti = uuid.uuid4().hex
        claims: dict[str, object] = {
            "sub": subject,
            "sid": session_id,
            "jti": jti,
            "iat": now,
            "exp": expires_at,
        }
        if self._issuer:
            claims["iss"] = self._issuer
        if self._audience:
            claims["aud"] = self._audience
        token = jwt.encode(claims, self._key, algorithm=JWT_ALGORITHM)
        return AccessToken(token=token, jti=jti, expires_at=expires_at)

    def decode(self, token: str, *, allow_expired: bool = False) -> TokenClaims:
        """Verified claims. `allow_expired` is for refresh only: the signature still counts.

        Clients send the same token on every request for its whole lifetime, so verified
        claims are kept in a small LRU: a repeat costs a dict lookup and an expiry check
        instead of a signature verification. (Revocation is checked by the caller on
        every request, against the deny-list, either way.)
        """
        if not allow_expired and (cached := self._verified.get(token)) is not None:
            if time.time() >= cached.expires_at.timestamp() + self._leeway:
                del self._verified[token]
                raise UnauthorizedException("Access token has expired")
            self._verified.move_to_end(token)
            return cached
        claims = self._verify(token, allow_expired=allow_expired)
        if not allow_expired:
            self._verified[token] = claims
            if len(self._verified) > VERIFIED_TOKEN_CACHE_SIZE:
                self._verified.popitem(last=False)
        return claims

    def _verify(self, token: str, *, allow_expired: bool) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[JWT_ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS, "verify_exp": not allow_expired},
            )
        except jwt.ExpiredSignatureError as error:
            raise UnauthorizedException("Access token has expired") from error
        except jwt.PyJWTError as error:
            raise UnauthorizedException("Invalid access token") from error
        return TokenClaims(
            subject=str(claims["sub"]),
            session_id=str(claims["sid"]),
            jti=str(claims["jti"]),
            issued_at=datetime.fromtimestamp(claims["iat"], UTC),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
