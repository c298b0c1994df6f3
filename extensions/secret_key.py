"""A Jinja global that makes a fresh random secret each time it is called.

Used only by files that are git-ignored and skipped on update (.env), so a
secret never lands in the answers file or in version control.
"""

from __future__ import annotations

import secrets

from jinja2 import Environment
from jinja2.ext import Extension

MIN_SECRET_BYTES = 32


def random_secret(nbytes: int = 48) -> str:
    if nbytes < MIN_SECRET_BYTES:
        raise ValueError(f"a secret needs at least {MIN_SECRET_BYTES} random bytes, got {nbytes}")
    return secrets.token_urlsafe(nbytes)


class SecretKeyExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals["random_secret"] = random_secret
