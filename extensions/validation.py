"""Validators for copier answers.

Each filter returns an empty string for a good answer, or a message that says
what to type instead: copier shows a non-empty validator result as the error.
"""

from __future__ import annotations

import keyword
import re
import sys

from jinja2 import Environment
from jinja2.ext import Extension

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# Names the generated tree already uses at top level, or that tools treat specially.
RESERVED_SLUGS = frozenset({"app", "alembic", "tests", "test", "docs", "src", "site", "main"})
# Deliberately simple: one "@", no spaces, a dot in the domain. Deliverability is not our business.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def project_name_error(value: str) -> str:
    name = value.strip()
    if not name:
        return "Enter a project name, for example: Orders Service"
    if len(name) > 80:
        return "Use at most 80 characters for the project name."
    if not re.search(r"[A-Za-z]", name):
        return "The project name needs at least one letter, for example: Orders Service"
    if any(char in name for char in "\"'\\`\n\r{}"):
        return (
            "Use letters, digits, spaces, hyphens or dots in the project name, "
            "for example: Orders Service"
        )
    return ""


def slug_error(value: str) -> str:
    example = "for example: orders-service"
    if not value:
        return f"Enter a project slug, {example}"
    if not SLUG_PATTERN.match(value):
        return (
            f"'{value}' is not a valid slug: use lowercase letters, digits and single hyphens, "
            f"starting with a letter, {example}"
        )
    as_identifier = value.replace("-", "_")
    if keyword.iskeyword(as_identifier) or keyword.issoftkeyword(as_identifier):
        return f"'{value}' is a Python keyword; choose another slug, {example}"
    if value in RESERVED_SLUGS or as_identifier in sys.stdlib_module_names:
        return (
            f"'{value}' clashes with a name the project or Python already uses; "
            f"choose another slug, {example}"
        )
    return ""


def email_error(value: str) -> str:
    if not EMAIL_PATTERN.match(value.strip()):
        return f"'{value}' is not an email address; type one like: jane@example.com"
    return ""


class ValidationExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["project_name_error"] = project_name_error
        environment.filters["slug_error"] = slug_error
        environment.filters["email_error"] = email_error
