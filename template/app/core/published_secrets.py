"""Secrets that look random but are public: published example keys, digests of words.

A key copied from a tutorial or a tool's default is known to everyone who read the
same page: jwt.io's `a-string-secret-at-least-256-bits-long` signed a forged admin
token that this service accepted (issue #17, third review, finding 1). Such keys pass
any guessability estimate (zxcvbn prices `09d25e09...` as 64 random characters), so
they are refused by name: `PUBLISHED_EXAMPLE_SECRETS` lists the example keys of
framework documentation, tutorials and tools, compared without case or surrounding
space. A digest of a word is public the same way (`sha256("secret")` is in every
rainbow table): `common_word_digest` recognises the hex or base64 (standard or
URL-safe, padded or not) MD5, SHA-1 and SHA-2 digests of the shipped common
passwords (`app.core.common_passwords`), each as listed (lowercase) and capitalised.

Limits: a list finds only the examples it holds, and a digest only of the words and
algorithms above (not salted, iterated or concatenated ones, nor HMACs). Generate the
key (`secrets.token_urlsafe(48)`): never take one from a page.
"""

import base64
import binascii
import contextlib
import hashlib
import re
from functools import cache, lru_cache
from typing import Protocol

from app.core.common_passwords import common_passwords

# Each with where it is published (looked up in public repositories, where each is
# found copied into many services' configuration).
PUBLISHED_EXAMPLE_SECRETS = frozenset(
    {
        # jwt.io's debugger: its default HS256 key, and the earlier defaults.
        "a-string-secret-at-least-256-bits-long",
        "your-256-bit-secret",
        "your-384-bit-secret",
        "your-512-bit-secret",
        # FastAPI tutorial, "OAuth2 with Password (and hashing), Bearer with JWT tokens".
        "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
        # Flask documentation, "Configuration Handling" (SECRET_KEY) and the quickstart.
        "192b9bdd22ab9ed4d12e236c78afcb9a393ec15f71bbf5dc987d54727823bcbf",
        '_5#y2l"f4q8z\\n\\xec]/',
        # Express (express-session README) and jsonwebtoken's README.
        "keyboard cat",
        "shhhhh",
        # Spring Boot + JJWT tutorials (the keys of the widely copied ones).
        "404e635266556a586e3272357538782f413f4428472b4b6250645367566b5970",
        "5367566b59703373367639792f423f4528482b4d6251655468576d5a71347437",
        "3cfa76ef14937c1c0ea519f8fc057a80fcd04a7420f8e8bcd0a7567c272e007b",
        # Supabase's self-hosting .env.example and CLI default (PostgREST JWT secret).
        "super-secret-jwt-token-with-at-least-32-characters-long",
        "your-super-secret-jwt-token-with-at-least-32-characters-long",
        # This template's own placeholders (.env.example, the Kubernetes secret example)
        # and development default.
        "change-me-to-a-long-random-value",
        "replace_me_with_python_-c_import_secrets_print_secrets.token_urlsafe_48",
        "insecure-development-secret-change-me",
    }
)


class Hash(Protocol):
    @property
    def name(self) -> str: ...

    def digest(self) -> bytes: ...


class HashFunction(Protocol):
    def __call__(self, data: bytes, /, *, usedforsecurity: bool) -> Hash: ...


# Digest sizes in bytes and the algorithms that produce them.
DIGESTS: dict[int, HashFunction] = {
    16: hashlib.md5,
    20: hashlib.sha1,
    28: hashlib.sha224,
    32: hashlib.sha256,
    48: hashlib.sha384,
    64: hashlib.sha512,
}
_HEX = re.compile(r"[0-9a-fA-F]+")


def is_published_example(secret: str) -> bool:
    """Whether `secret` is one of `PUBLISHED_EXAMPLE_SECRETS` (case and space ignored)."""
    return secret.strip().lower() in PUBLISHED_EXAMPLE_SECRETS


def _decodings(secret: str) -> list[bytes]:
    """`secret` read as hex and as base64 (standard, URL-safe), where it is either."""
    text = secret.strip()
    decoded = []
    if _HEX.fullmatch(text) and len(text) % 2 == 0:
        decoded.append(bytes.fromhex(text))
    padded = text + "=" * (-len(text) % 4)
    for altchars in (b"+/", b"-_"):
        with contextlib.suppress(binascii.Error, ValueError):
            decoded.append(base64.b64decode(padded, altchars=altchars, validate=True))
    return decoded


@cache
def _words() -> tuple[bytes, ...]:
    words = {variant for word in common_passwords() for variant in (word, word.capitalize())}
    return tuple(word.encode() for word in words)


@lru_cache(maxsize=64)
def common_word_digest(secret: str) -> str | None:
    """The algorithm (`"sha256"`, ...) of which `secret` is the hex or base64 digest of a
    common password, or None. Hashes every word (40,000) in the algorithm of each
    reading's digest size: 0.1 to 0.5 s of CPU a new secret (cached), so call it at
    start-up or in a thread, never on the event loop."""
    for digest in _decodings(secret):
        if (algorithm := DIGESTS.get(len(digest))) is not None and any(
            algorithm(word, usedforsecurity=False).digest() == digest for word in _words()
        ):
            return algorithm(b"", usedforsecurity=False).name
    return None
