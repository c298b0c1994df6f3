"""Filters that render a free-text answer as a literal of the file it lands in.

Every answer a user types (the project name, the description, the author) goes
through one of these, chosen by the file: `toml_string` in pyproject.toml,
`py_string` in Python, `yaml_string` in YAML, `json_string` in JSON, `md_text` in
Markdown and `dotenv_string` in .env files. Each returns a literal that the file's
own parser reads back as exactly the answer (tests/test_answers.py parses every
rendered file with hostile answers to prove it).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

from jinja2 import Environment
from jinja2.ext import Extension

# ruff's default; the generated pyproject.toml sets the same line-length.
LINE_LENGTH = 100


def _escape_unprintable(text: str) -> str:
    """Characters that are not printable (controls, bidi overrides, ...) as \\uXXXX escapes.

    The escapes are the same in JSON, TOML and YAML double-quoted strings.
    """
    out = []
    for char in text:
        if char.isprintable():
            out.append(char)
        elif ord(char) > 0xFFFF:
            out.append(f"\\U{ord(char):08X}")
        else:
            out.append(f"\\u{ord(char):04X}")
    return "".join(out)


def json_string(value: str) -> str:
    """A JSON string literal (RFC 8259): quotes, backslashes and controls escaped."""
    return _escape_unprintable(json.dumps(value, ensure_ascii=False))


def toml_string(value: str) -> str:
    """A TOML basic string ("..."; TOML 1.0 shares JSON's escapes, plus \\UXXXXXXXX)."""
    return json_string(value)


def yaml_string(value: str) -> str:
    """A YAML double-quoted scalar: JSON's escapes are valid there too (YAML 1.2, 7.3.1)."""
    return json_string(value)


def display_width(text: str) -> int:
    """Columns a line takes in an editor, as ruff counts them: wide (CJK, emoji) count 2."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) == "Cf":
            continue
        width += 2 if unicodedata.east_asian_width(char) in {"W", "F"} else 1
    return width


def _ruff_confusables() -> frozenset[str]:
    """The characters the pinned ruff reports as look-alikes of ASCII ones (RUF001-RUF003):
    ruff_confusables.txt, one code point (hex) a line."""
    lines = Path(__file__).with_name("ruff_confusables.txt").read_text(encoding="utf-8")
    return frozenset(
        chr(int(line.split()[0], 16)) for line in lines.splitlines() if not line.startswith("#")
    )


RUFF_CONFUSABLES = _ruff_confusables()


def ruff_confusables(values: list[str]) -> list[str]:
    """The characters of `values` (answers written into Python source) that ruff would
    report as confusable, in code point order: the generated pyproject.toml lists them in
    `allowed-confusables`, so a name with a typographic apostrophe or an en dash stays as
    typed and lint-clean.
    A character that is not printable is escaped in the literal, so it is not listed."""
    return sorted({char for value in values for char in value if char in RUFF_CONFUSABLES})


def _py_literal(value: str) -> str:
    """A Python string literal as `ruff format` writes it.

    Double quotes unless the text holds more double than single quotes; only the
    escapes that are needed (ruff removes the others); an unprintable character by
    its Unicode name (`\\N{NO-BREAK SPACE}`), else as repr() escapes it. Not `\\xa0`:
    its Latin letters would join a neighbouring Cyrillic or Greek word, which ruff
    reports as confusable letters (RUF001); the braces keep the words apart.
    """
    quote = "'" if value.count('"') > value.count("'") else '"'
    out = []
    for char in value:
        if char in {"\\", quote}:
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif name := unicodedata.name(char, ""):
            out.append(f"\\N{{{name}}}")
        else:
            out.append(repr(char)[1:-1])
    return quote + "".join(out) + quote


def _chunks(value: str, width: int) -> list[str]:
    """Split into pieces whose literals fit in `width` columns: after whitespace where
    possible, inside a word longer than a line."""
    chunks: list[str] = []
    current = ""
    for word in re.findall(r"\S+\s*|\s+", value):
        if current and display_width(_py_literal(current + word)) > width:
            chunks.append(current)
            current = ""
        for char in word:
            if current and display_width(_py_literal(current + char)) > width:
                chunks.append(current)
                current = ""
            current += char
    if current:
        chunks.append(current)
    return chunks


def py_string(value: str, column: int = 0, indent: int = 0, trailer: int = 1) -> str:
    """A Python string literal, wrapped to ruff's line length when it would not fit.

    `column` is where the literal starts on its line, `indent` that line's
    indentation and `trailer` the characters after it (a comma). A literal that
    does not fit becomes an implicit concatenation in parentheses, one piece per
    line, split after whitespace (or inside a word longer than a line): the form
    `ruff format` keeps and `ruff check` accepts (E501).
    """
    literal = _py_literal(value)
    if column + display_width(literal) + trailer <= LINE_LENGTH:
        return literal
    inner = " " * (indent + 4)
    pieces = _chunks(value, LINE_LENGTH - len(inner))
    lines = [inner + _py_literal(piece) for piece in pieces]
    return "(\n" + "\n".join(lines) + "\n" + " " * indent + ")"


# Characters with a meaning in CommonMark/GFM inline text; a backslash makes each literal.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]{}<>#!|~&])")


def md_text(value: str) -> str:
    """Text for a Markdown paragraph or heading that renders as `value` (CommonMark, GFM).

    Inline markup characters get a backslash; a leading list or heading marker too.
    Surrounding whitespace is dropped (Markdown drops it anyway, or makes four leading
    spaces a code block).
    """
    escaped = _MARKDOWN_PUNCTUATION.sub(r"\\\1", value.strip())
    # "1. Foo" or "- Foo" would start a list: escape the marker.
    escaped = re.sub(r"^(\d+)([.)])", r"\1\\\2", escaped)
    return re.sub(r"^([-+=])", r"\\\1", escaped)


def dotenv_string(value: str) -> str:
    """A double-quoted .env value that python-dotenv (pydantic-settings) and Docker Compose
    both read back as `value`.

    Both decode `\\\\` and `\\"` in double quotes. A `$` has no spelling both agree on
    (Compose expands `$NAME`, python-dotenv `${NAME}`), nor has a line break: the
    validators refuse them in the answers that land here.
    """
    if "$" in value or any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError(f"{value!r} has a '$' or a control character: no .env spelling")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class EscapingExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["json_string"] = json_string
        environment.filters["ruff_confusables"] = ruff_confusables
        environment.filters["toml_string"] = toml_string
        environment.filters["yaml_string"] = yaml_string
        environment.filters["py_string"] = py_string
        environment.filters["md_text"] = md_text
        environment.filters["dotenv_string"] = dotenv_string
