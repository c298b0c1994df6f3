"""Validators for copier answers.

Each filter returns an empty string for a good answer, or a message that says
what to type instead: copier shows a non-empty validator result as the error.
Free text (names, the description) may use any script and any punctuation: the
escaping filters (extensions/escaping.py) write it safely into every file.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import sys
import unicodedata
from email.errors import HeaderParseError
from email.headerregistry import Address
from pathlib import Path

from jinja2 import Environment
from jinja2.ext import Extension

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# Kubernetes object names derived from the slug ("<slug>-migrate", "<slug>-secrets")
# must stay within the 63 characters of a DNS label (RFC 1123).
MAX_SLUG_LENGTH = 50
# Names the generated tree already uses at top level, or that tools treat specially.
RESERVED_SLUGS = frozenset({"app", "alembic", "tests", "test", "docs", "src", "site", "main"})
# A dot in the domain (no "jane@localhost"); the rest is what the build backend parses.
EMAIL_DOMAIN_PATTERN = re.compile(r"@[^@]+\.[^@.]+$")
MAX_NAME_LENGTH = 80
# The slug proposed for a name with no Latin letters or digits to build one from.
FALLBACK_SLUG = "service"
MAX_DESCRIPTION_LENGTH = 300


def _normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them: runs of "-", "_", "." are one "-"."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _service_dependency_names() -> frozenset[str]:
    """Every distribution the rendered service depends on, in any variant: the direct
    ones read from extensions/context.py (the lists pyproject.toml is rendered from), the
    build backend, and the transitive ones of a lock (locked_dependencies.txt). A project
    named like one of them depends on itself: `uv lock` fails.
    """
    spec = importlib.util.spec_from_file_location(
        "template_dependency_lists", Path(__file__).with_name("context.py")
    )
    assert spec is not None
    assert spec.loader is not None
    context = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(context)
    requirements = [
        *context.RUNTIME_DEPENDENCIES,
        *context.DEV_DEPENDENCIES,
        *(line for lines in context.OPTIONAL_DEPENDENCIES.values() for line in lines),
        *(
            line
            for by_answer in context.VARIANT_DEPENDENCIES.values()
            for runtime, dev in by_answer.values()
            for line in runtime + dev
        ),
        "hatchling",
    ]
    # Transitive ones (rich, click, ...) are not in those lists: a snapshot of the lock.
    snapshot = Path(__file__).with_name("locked_dependencies.txt").read_text(encoding="utf-8")
    requirements += [line for line in snapshot.splitlines() if line and not line.startswith("#")]
    # The name is what precedes the extras, the version or the markers (PEP 508).
    return frozenset(
        _normalized(re.split(r"[\[<>=!~;\s]", line, maxsplit=1)[0]) for line in requirements
    )


SERVICE_DEPENDENCIES = _service_dependency_names()


def _one_line_error(value: str, what: str, example: str) -> str:
    """A message when `value` has a line break or another control character, else ""."""
    if any(unicodedata.category(char) in {"Cc", "Zl", "Zp"} for char in value):
        return f"Write the {what} on one line, without tabs or control characters, {example}"
    return ""


def project_name_error(value: str) -> str:
    example = "for example: Orders Service"
    name = value.strip()
    if not name:
        return f"Enter a project name, {example}"
    if len(name) > MAX_NAME_LENGTH:
        return f"Use at most {MAX_NAME_LENGTH} characters for the project name, {example}"
    if not any(char.isalpha() for char in name):
        return f"The project name needs at least one letter (any script), {example}"
    if "$" in name:
        # It lands in .env files, where "$" starts a variable (and Compose and
        # python-dotenv disagree on how to escape it).
        return f"Leave out '$': .env files read it as a variable, {example}"
    return _one_line_error(value, "project name", example)


def slug_error(value: str) -> str:
    example = "for example: orders-service"
    if not value:
        return f"Enter a project slug, {example}"
    if not SLUG_PATTERN.match(value):
        return (
            f"'{value}' is not a valid slug: use lowercase ASCII letters, digits and single "
            f"hyphens, starting with a letter, {example}"
        )
    if len(value) > MAX_SLUG_LENGTH:
        return f"Use at most {MAX_SLUG_LENGTH} characters for the slug, {example}"
    as_identifier = value.replace("-", "_")
    if keyword.iskeyword(as_identifier) or keyword.issoftkeyword(as_identifier):
        return f"'{value}' is a Python keyword; choose another slug, {example}"
    if _normalized(value) in SERVICE_DEPENDENCIES:
        return (
            f"'{value}' is a package the service depends on, and a project cannot depend "
            f"on itself; choose another slug, for example: {value}-service"
        )
    if value in RESERVED_SLUGS or as_identifier in sys.stdlib_module_names:
        return (
            f"'{value}' clashes with a name the project or Python already uses; "
            f"choose another slug, {example}"
        )
    return ""


def default_slug(name: str) -> str:
    """The slug proposed for a project name; it always passes `slug_error`.

    "Orders API" -> "orders-api"; "2FA Service" -> "service-2fa" (a slug starts
    with a letter, so leading numbers move after the words); "App" -> "app-service"
    (clashes with a name the project, Python or the standard library uses); a name
    without Latin letters or digits ("Сервис заказов") -> "service", to replace by hand.
    """
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    named = [word for word in words if word[0].isalpha()]
    numbered = [word for word in words if not word[0].isalpha()]
    if numbered and words[0] in numbered:
        words = (named or [FALLBACK_SLUG]) + numbered
    slug = "-".join(words)
    while len(slug) > MAX_SLUG_LENGTH and "-" in slug:
        slug = slug.rsplit("-", 1)[0]
    slug = slug[:MAX_SLUG_LENGTH]
    if not slug:
        return FALLBACK_SLUG
    if slug_error(slug):
        slug = f"{slug[: MAX_SLUG_LENGTH - len(FALLBACK_SLUG) - 1]}-{FALLBACK_SLUG}"
    return FALLBACK_SLUG if slug_error(slug) else slug


def description_error(value: str) -> str:
    example = "for example: Orders, invoices and refunds for the web shop."
    if len(value) > MAX_DESCRIPTION_LENGTH:
        return f"Use at most {MAX_DESCRIPTION_LENGTH} characters for the description, {example}"
    # Package metadata (the Summary field) is one line.
    return _one_line_error(value, "description", example)


def author_name_error(value: str) -> str:
    example = "for example: Jane Doe"
    if not value.strip():
        return f"Enter a name, {example}"
    return _one_line_error(value, "author name", example)


def email_error(value: str) -> str:
    """ "" for an address the build backend accepts exactly as typed, else what to type.

    hatchling writes `project.authors` into the package metadata with
    `email.headerregistry.Address(addr_spec=...)` (RFC 5322 addr-spec), which refuses
    "a,b@example.com" or a control character and fails `make install`; the same parser
    decides here. An address it would change (surrounding spaces, a comment) is refused
    too: the answer is written as typed.
    """
    message = f"{value!r} is not an email address; type one like: jane@example.com"
    try:
        address = Address(addr_spec=value)
    except (ValueError, IndexError, HeaderParseError):  # a defect is a ValueError; "" IndexError
        return message
    if address.addr_spec != value or not EMAIL_DOMAIN_PATTERN.search(value):
        return message
    return ""


class ValidationExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["project_name_error"] = project_name_error
        environment.filters["slug_error"] = slug_error
        environment.filters["default_slug"] = default_slug
        environment.filters["description_error"] = description_error
        environment.filters["author_name_error"] = author_name_error
        environment.filters["email_error"] = email_error
