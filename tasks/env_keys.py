"""Copier task: add the settings an answer needs to .env, never overwriting a value.

.env is rendered once, at copy time, and skipped on every update (it holds the
secrets). When an update changes an answer that needs a new secret in .env (for
example `deployment` from kubernetes to compose, whose docker-compose.yml requires
POSTGRES_PASSWORD), this appends a freshly generated value and says so.

    python env_keys.py .env POSTGRES_PASSWORD [NAME ...]

Runs with the Python that runs Copier: standard library only.
"""

from __future__ import annotations

import re
import secrets
import sys
from pathlib import Path

# Why each key is needed: the comment written above it in .env.
REASONS = {
    "POSTGRES_PASSWORD": "docker-compose.yml: password of the stack's PostgreSQL "
    "(the app itself ignores it).",
}


def missing_keys(text: str, names: list[str]) -> list[str]:
    """The names that no `NAME=` line (optionally `export NAME=`) of the file sets."""
    present = set(re.findall(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", text, re.M))
    return [name for name in names if name not in present]


def main(env_file: str, *names: str) -> int:
    path = Path(env_file)
    if not path.exists():
        print(
            f"{env_file} does not exist: set {', '.join(names)} in your environment "
            "(see .env.example).",
            file=sys.stderr,
        )
        return 0
    text = path.read_text(encoding="utf-8")
    missing = missing_keys(text, list(names))
    if not missing:
        return 0
    lines = [] if not text or text.endswith("\n") else [""]
    for name in missing:
        lines += [
            f"# {REASONS.get(name, 'Added by copier update.')}",
            f"{name}={secrets.token_urlsafe(48)}",
        ]
    path.write_text(text + "\n".join(lines) + "\n", encoding="utf-8")
    print(
        f"Added {', '.join(missing)} to {env_file} with a new random value "
        "(the answers you changed need it; existing values were kept).",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
