"""MkDocs hook: write reference/configuration.md from the settings the template renders.

Every variant's `.env.example` documents exactly its Settings fields (a template test
enforces that), so the reference is built from those files: it cannot drift from the
code. Two renders cover every answer of every toggle question.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import copier
import yaml

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "docs" / "reference" / "configuration.md"
PRODUCTION_RULES = {
    "SECRET_KEY": "required: 32+ random characters, not the default",
    "DATABASE_URL": "required: PostgreSQL, not SQLite",
    "REDIS_URL": "required",
    "DEBUG": "must be false",
    "COOKIE_SECURE": "must be true",
}


def toggle_answers() -> list[dict[str, Any]]:
    """Renders that together use every choice of every question with choices."""
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    toggles = {
        name: list(spec["choices"].values())
        if isinstance(spec["choices"], dict)
        else list(spec["choices"])
        for name, spec in config.items()
        if not name.startswith("_") and isinstance(spec, dict) and spec.get("choices")
    }
    widest = max(len(choices) for choices in toggles.values())
    return [
        {name: choices[index % len(choices)] for name, choices in toggles.items()}
        for index in range(widest)
    ]


def parse_env_example(text: str) -> list[tuple[str, str, str]]:
    """(name, default, comment) for each `NAME=value`, with the comment block above it."""
    entries, comment = [], []
    for line in text.splitlines():
        if line.startswith("#"):
            comment.append(line.lstrip("# ").strip())
        elif match := re.match(r"^([A-Z_]+)=(.*)$", line):
            described = " ".join(part for part in comment if part and "=" not in part)
            entries.append((match.group(1), match.group(2), described))
            comment = []
        else:
            comment = []
    return entries


def collect() -> dict[str, dict[str, Any]]:
    settings: dict[str, dict[str, Any]] = {}
    for answers in toggle_answers():
        with tempfile.TemporaryDirectory() as folder:
            copier.run_copy(
                str(ROOT),
                folder,
                data=answers,
                defaults=True,
                unsafe=True,
                quiet=True,
                vcs_ref="HEAD",
                skip_tasks=True,  # reads .env.example only: no uv.lock needed
            )
            text = (Path(folder) / ".env.example").read_text()
        for name, default, description in parse_env_example(text):
            entry = settings.setdefault(
                name, {"default": default, "description": description, "answers": []}
            )
            entry["answers"].append(answers)
    renders = len(toggle_answers())
    for entry in settings.values():
        entry["applies"] = "all" if len(entry["answers"]) == renders else _common(entry["answers"])
    return settings


def _common(answers: list[dict[str, Any]]) -> str:
    shared = set(answers[0].items()).intersection(*(set(a.items()) for a in answers[1:]))
    return ", ".join(f"`{name}={value}`" for name, value in sorted(shared)) or "some variants"


def render_page(settings: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# Configuration reference",
        "",
        "Every setting of a generated service is an environment variable (or a line in",
        "`.env`). This page is generated from the rendered `.env.example` files at build",
        "time, so it always matches the code. *Applies to* names the answers that render",
        "the setting; *Production* what `ENVIRONMENT=production` insists on.",
        "",
        "| Variable | Default | Applies to | Production | Description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, entry in settings.items():
        default = f"`{entry['default']}`" if entry["default"] else "(unset)"
        description = entry["description"].replace("|", "\\|")
        rule = PRODUCTION_RULES.get(name, "")
        lines.append(f"| `{name}` | {default} | {entry['applies']} | {rule} | {description} |")
    return "\n".join(lines) + "\n"


def on_pre_build(config: Any) -> None:
    page = render_page(collect())
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)  # generated only: not in git
    # Write only on change: `mkdocs serve` rebuilds whenever a file in docs/ changes.
    if not OUTPUT.exists() or OUTPUT.read_text() != page:
        OUTPUT.write_text(page)
