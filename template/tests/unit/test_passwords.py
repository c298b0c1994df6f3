import os
import sys
import threading

import bcrypt
import pytest

from app.core.security import HASHING_NICENESS, PasswordHasher


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(rounds=4, max_concurrency=2)


async def test_hash_then_verify_roundtrip(hasher: PasswordHasher) -> None:
    hashed = await hasher.hash("s3cret-password")

    assert hashed != "s3cret-password"
    assert hashed.startswith("$2b$04$")
    assert await hasher.verify("s3cret-password", hashed)


async def test_wrong_password_does_not_verify(hasher: PasswordHasher) -> None:
    hashed = await hasher.hash("s3cret-password")

    assert not await hasher.verify("s3cret-passwore", hashed)
    assert not await hasher.verify("", hashed)


async def test_same_password_hashes_differently_each_time(
    hasher: PasswordHasher,
) -> None:
    assert await hasher.hash("same-password") != await hasher.hash("same-password")


async def test_long_multibyte_passphrase_is_verified_exactly(
    hasher: PasswordHasher,
) -> None:
    # 100 characters, 200 UTF-8 bytes: far past bcrypt's 72-byte limit.
    passphrase = "é" * 100
    hashed = await hasher.hash(passphrase)

    assert await hasher.verify(passphrase, hashed)
    # A change after byte 72 must still be detected (raw bcrypt would ignore it).
    assert not await hasher.verify("é" * 99 + "e", hashed)
    assert not await hasher.verify("é" * 99, hashed)


@pytest.mark.parametrize("stored", ["not-a-bcrypt-hash", "", "$2b$04$tooshort", "hé$2b$"])
async def test_malformed_stored_hash_never_verifies(hasher: PasswordHasher, stored: str) -> None:
    assert await hasher.verify("any-password", stored) is False


async def test_the_dummy_verification_is_a_real_check_at_the_same_cost(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown account must cost what a known one costs: one bcrypt check, same
    algorithm and cost factor (so the same work; timings themselves are not asserted)."""
    checked: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    stored = await hasher.hash("s3cret-password")

    await hasher.verify("any-password", stored)
    await hasher.verify_dummy("any-password")

    real_check, dummy_check = checked
    assert dummy_check[:7] == real_check[:7] == b"$2b$04$"
    assert dummy_check != real_check


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priorities are Linux's")
async def test_hashing_threads_run_below_the_event_loop(hasher: PasswordHasher) -> None:
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    await hasher.hash("s3cret-password")

    hashing = [
        os.getpriority(os.PRIO_PROCESS, thread.native_id)
        for thread in threading.enumerate()
        if thread.name.startswith("password-hashing") and thread.native_id is not None
    ]

    assert hashing, "no hashing thread found"
    assert hashing == [min(19, own + HASHING_NICENESS)] * len(hashing)
