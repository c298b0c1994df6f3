"""Edges of token and password handling that the mutation score showed untested: the
issuer check, the expiry of a token (cached or not) and its leeway, the verified-token
cache's eviction, the hashing pool's bounds and their bookkeeping, a closed hasher, and
hashes made under older rules (see docs/testing.md, "Mutation score")."""

import asyncio
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import jwt
import pytest
from pydantic import SecretStr

from app.core import security
from app.core.config import Settings
from app.core.security import JWT_ALGORITHM, PasswordHasher, TokenCodec
from app.exceptions import ServerBusyException, UnauthorizedException, ValidationException
from tests.helpers import build_settings

SESSION_ID = str(uuid.uuid4())


@pytest.fixture
def settings() -> Settings:
    return build_settings(database_url="sqlite+aiosqlite://").model_copy(
        update={"secret_key": SecretStr(secrets.token_urlsafe(64)), "jwt_issuer": "svc-a"}
    )


def test_a_configured_issuer_is_written_and_checked(settings: Settings) -> None:
    ours = TokenCodec(settings)
    theirs = TokenCodec(settings.model_copy(update={"jwt_issuer": "svc-b"}))
    unnamed = TokenCodec(settings.model_copy(update={"jwt_issuer": None}))

    token = ours.issue("user-1", SESSION_ID).token

    claims = jwt.decode(
        token,
        settings.secret_key.get_secret_value(),
        algorithms=[JWT_ALGORITHM],
        options={"verify_aud": False},
    )
    assert claims["iss"] == "svc-a"
    assert ours.decode(token).subject == "user-1"
    for foreign in (theirs.issue("user-1", SESSION_ID), unnamed.issue("user-1", SESSION_ID)):
        with pytest.raises(UnauthorizedException, match="Invalid access token"):
            ours.decode(foreign.token)


def test_a_cached_token_expires_at_the_exact_instant(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    codec = TokenCodec(settings)
    access = codec.issue("user-1", SESSION_ID)
    claims = codec.decode(access.token)  # now cached
    # The token's "exp" is whole seconds: the boundary is the decoded one, not the issued one.
    boundary = claims.expires_at.timestamp() + settings.jwt_leeway_seconds
    monkeypatch.setattr(time, "time", lambda: boundary - 1)  # within the leeway: still good
    assert codec.decode(access.token) == claims
    monkeypatch.setattr(time, "time", lambda: boundary)

    with pytest.raises(UnauthorizedException, match=r"^Access token has expired$"):
        codec.decode(access.token)


def test_a_token_past_its_expiry_is_good_within_the_leeway(settings: Settings) -> None:
    """Verified for the first time (not cached): PyJWT applies the leeway."""
    assert settings.jwt_leeway_seconds > 3
    now = datetime.now(UTC)
    claims = {
        "sub": "user-1",
        "sid": SESSION_ID,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "iss": settings.jwt_issuer,
    }
    key = settings.secret_key.get_secret_value()
    late = jwt.encode({**claims, "exp": now - timedelta(seconds=3)}, key, JWT_ALGORITHM)
    gone = jwt.encode(
        {**claims, "exp": now - timedelta(seconds=settings.jwt_leeway_seconds + 3)},
        key,
        JWT_ALGORITHM,
    )
    codec = TokenCodec(settings)

    assert codec.decode(late).subject == "user-1"
    with pytest.raises(UnauthorizedException, match=r"^Access token has expired$"):
        codec.decode(gone)


def test_the_verified_token_cache_keeps_the_most_recently_used(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(security, "VERIFIED_TOKEN_CACHE_SIZE", 2)
    codec = TokenCodec(settings)
    first, second, third = (codec.issue("user-1", SESSION_ID).token for _ in range(3))
    verified: list[str] = []
    real_decode = jwt.decode

    def spy(token: str, *args: Any, **kwargs: Any) -> Any:
        verified.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", spy)
    for token in (first, second, third):  # the third pushes the first out
        codec.decode(token)
    for token in (second, third, first):  # two from the cache; the first verified again
        codec.decode(token)

    assert verified == [first, second, third, first]


async def test_hashing_runs_at_most_max_concurrency_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hasher = PasswordHasher(rounds=4, max_concurrency=2)
    running = 0
    peak = 0
    threads: set[str] = set()
    lock = threading.Lock()
    real_hashpw = bcrypt.hashpw

    def spy(password: bytes, salt: bytes) -> bytes:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            threads.add(threading.current_thread().name)
        time.sleep(0.05)  # hold the thread, so a wider pool would overlap more
        try:
            return real_hashpw(password, salt)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(bcrypt, "hashpw", spy)
    try:
        await asyncio.gather(*(hasher.hash(f"password-{n}") for n in range(6)))
    finally:
        hasher.close()

    assert peak == 2
    assert all(name.startswith("password-hashing") for name in threads), threads


async def test_verification_runs_in_the_hashing_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hasher = PasswordHasher(rounds=4, max_concurrency=1)
    stored = await hasher.hash("s3cret-password")
    threads: list[str] = []
    real_checkpw = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        threads.append(threading.current_thread().name)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    try:
        assert await hasher.verify("s3cret-password", stored)
    finally:
        hasher.close()

    [thread] = threads
    assert thread.startswith("password-hashing")


async def test_a_closed_hasher_takes_no_more_work() -> None:
    hasher = PasswordHasher(rounds=4, max_concurrency=1)
    hasher.close()

    with pytest.raises(RuntimeError, match="shutdown"):
        await hasher.hash("s3cret-password")


async def test_closing_cancels_the_waiting_hashes_without_waiting_for_the_running_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At shutdown: a hash queued for a thread is cancelled, and the event loop is not
    held until the running one ends."""
    hasher = PasswordHasher(rounds=4, max_concurrency=1)
    entered, release = threading.Event(), threading.Event()
    real_hashpw = bcrypt.hashpw

    def held(password: bytes, salt: bytes) -> bytes:
        entered.set()
        release.wait(timeout=5)
        return real_hashpw(password, salt)

    monkeypatch.setattr(bcrypt, "hashpw", held)
    running = asyncio.ensure_future(hasher.hash("first-password"))
    waiting = asyncio.ensure_future(hasher.hash("second-password"))
    assert await asyncio.to_thread(entered.wait, 5)
    started = time.monotonic()
    hasher.close()
    closing = time.monotonic() - started
    release.set()

    assert closing < 2.5  # the running hash is held for 5 s
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (await running).startswith("$2b$04$")


async def test_the_queue_bound_holds_after_earlier_hashes_finish() -> None:
    """Room for one running and one waiting: after hashes that came and went, a burst of
    three still gets exactly one refusal, with Retry-After of the one hash ahead (1 s)."""
    hasher = PasswordHasher(rounds=4, max_concurrency=1, max_waiting=1)
    try:
        for n in range(3):
            await hasher.hash(f"password-{n}")
        results = await asyncio.gather(
            *(hasher.hash(f"burst-{n}") for n in range(3)), return_exceptions=True
        )
    finally:
        hasher.close()

    refused = [result for result in results if isinstance(result, ServerBusyException)]
    assert sum(isinstance(result, str) for result in results) == 2
    assert [(error.headers or {})["Retry-After"] for error in refused] == ["1"]


async def test_the_time_bound_uses_the_measured_cost_of_a_hash() -> None:
    """Until a hash is timed, one is guessed at 0.25 s; at cost 4 one takes about a
    millisecond, so after the first a hash waiting behind another is well within 0.1 s."""
    hasher = PasswordHasher(rounds=4, max_concurrency=1, max_waiting=10, max_wait_seconds=0.1)
    try:
        await hasher.hash("password-0")
        results = await asyncio.gather(
            *(hasher.hash(f"burst-{n}") for n in range(2)), return_exceptions=True
        )
    finally:
        hasher.close()

    assert all(isinstance(result, str) for result in results), results


async def test_a_hash_that_finds_a_thread_free_never_waits() -> None:
    """Two threads: the second hash starts at once, however long a hash takes; the third
    would wait for a whole one (0.5 s, past the 0.2 s bound)."""
    hasher = PasswordHasher(rounds=4, max_concurrency=2, max_waiting=10, max_wait_seconds=0.2)
    hasher._seconds_per_hash = 0.5  # as measured on a slow machine
    release = threading.Event()

    def held() -> bool:
        release.wait(timeout=30)
        return True

    try:
        admitted = [asyncio.ensure_future(hasher._run(held)) for _ in range(3)]
        await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(*admitted, return_exceptions=True)
    finally:
        release.set()
        hasher.close()

    assert results[:2] == [True, True]
    assert isinstance(results[2], ServerBusyException)


async def test_a_hash_of_another_cost_verifies_and_is_replaced() -> None:
    """BCRYPT_ROUNDS raised since the hash was made: the login succeeds, and a hash at the
    new cost comes back to store."""
    before, after = PasswordHasher(rounds=4, max_concurrency=1), PasswordHasher(5, 1)
    try:
        stored = await before.hash("s3cret-password")
        matches, replacement = await after.verify_and_update("s3cret-password", stored)
        assert matches
        assert replacement is not None
        assert replacement.startswith("$2b$05$")
        assert await after.verify_and_update("s3cret-password", replacement) == (True, None)
    finally:
        before.close()
        after.close()


async def test_a_hash_made_before_the_character_rule_still_verifies() -> None:
    """Text RFC 8265 now refuses (a control character) cannot be stored normalised: the
    old hash stays, and keeps working."""
    hasher = PasswordHasher(rounds=4, max_concurrency=1)
    try:
        legacy = hasher._hash_sync("tab\tin-the-password")  # as hashes were made then
        assert await hasher.verify_and_update("tab\tin-the-password", legacy) == (True, None)
        with pytest.raises(ValidationException) as refused:
            await hasher.hash("tab\tin-the-password")
    finally:
        hasher.close()

    assert refused.value.message == (
        "The password contains characters that are not allowed in a password "
        "(control characters or unassigned code points; RFC 8265)"
    )
