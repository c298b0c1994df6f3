"""Filters that turn free-form names into slugs and Python identifiers."""

from __future__ import annotations

import re
import unicodedata

from jinja2 import Environment
from jinja2.ext import Extension


def slugify(value: str) -> str:
    """Lowercase ASCII words joined by single hyphens: "My Café API" -> "my-cafe-api"."""
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    return "-".join(words)


def identifier(value: str) -> str:
    """A valid snake_case Python identifier: "my-service" -> "my_service", "2fa" -> "_2fa"."""
    snake = slugify(value).replace("-", "_")
    if not snake:
        return "_"
    return f"_{snake}" if snake[0].isdigit() else snake


class NamingExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["slugify"] = slugify
        environment.filters["identifier"] = identifier
