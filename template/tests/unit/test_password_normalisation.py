"""Passwords are compared as text, not as code points (RFC 8265 OpaqueString), and the
hashing queue is bounded."""

import asyncio
import threading
import unicodedata

import pytest

from app.core.security import PasswordHasher, normalize_password
from app.exceptions import ServerBusyException, ValidationException

NFC = unicodedata.normalize("NFC", "Mañana-Café-2024")
NFD = unicodedata.normalize("NFD", NFC)


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(rounds=4, max_concurrency=2)


def test_the_two_spellings_differ_as_code_points() -> None:
    assert NFC != NFD
    assert normalize_password(NFC) == normalize_password(NFD) == NFC


def test_non_ascii_spaces_are_mapped_to_a_space() -> None:
    assert normalize_password("correct\u3000horse\u00a0battery") == "correct horse battery"


async def test_a_password_verifies_however_it_was_composed(hasher: PasswordHasher) -> None:
    hashed = await hasher.hash(NFC)

    assert await hasher.verify(NFD, hashed)
    assert await hasher.verify(NFC, hashed)
    assert not await hasher.verify("Manana-Cafe-2024", hashed)


async def test_a_hash_of_the_text_as_typed_still_verifies_and_is_replaced(
    hasher: PasswordHasher,
) -> None:
    legacy = hasher._hash_sync(NFD)  # how hashes were made before normalisation

    matches, rehashed = await hasher.verify_and_update(NFD, legacy)

    assert matches
    assert rehashed is not None
    assert await hasher.verify_and_update(NFC, rehashed) == (True, None)
    assert await hasher.verify_and_update("wrong-password", legacy) == (False, None)


async def test_a_new_password_with_control_characters_is_refused(hasher: PasswordHasher) -> None:
    with pytest.raises(ValidationException):
        await hasher.hash("tab\tin-the-password")


async def test_hashes_past_the_queue_are_refused_with_retry_after() -> None:
    hasher = PasswordHasher(rounds=10, max_concurrency=1, max_waiting=2)
    try:
        results = await asyncio.gather(
            *(hasher.hash(f"password-{n}") for n in range(6)), return_exceptions=True
        )
    finally:
        hasher.close()

    refused = [result for result in results if isinstance(result, ServerBusyException)]
    hashed = [result for result in results if isinstance(result, str)]
    assert len(hashed) == 3  # one running, two waiting
    assert len(refused) == 3
    assert all(error.status_code == 503 for error in refused)
    assert all(int((error.headers or {})["Retry-After"]) >= 1 for error in refused)


async def test_hashes_that_would_wait_past_the_time_bound_are_refused() -> None:
    """A room for 100 in the queue, but at 0.5 s a hash (one thread) only the hashes that
    would start within 2 s are taken: the running one and four waiting (0.5 to 2.0 s)."""
    hasher = PasswordHasher(rounds=4, max_concurrency=1, max_waiting=100, max_wait_seconds=2.0)
    hasher._seconds_per_hash = 0.5  # as measured on a slow machine
    release = threading.Event()

    def held() -> bool:  # a hash that takes until the test lets it finish
        release.wait(timeout=30)
        return True

    try:
        admitted = [asyncio.ensure_future(hasher._run(held)) for _ in range(10)]
        await asyncio.sleep(0)
        refused = [task for task in admitted if task.done()]
        release.set()
        results = await asyncio.gather(*admitted, return_exceptions=True)
    finally:
        release.set()
        hasher.close()

    assert sum(result is True for result in results) == 5
    assert len(refused) == 5
    errors = [result for result in results if isinstance(result, ServerBusyException)]
    assert [(error.headers or {})["Retry-After"] for error in errors] == ["3"] * 5
