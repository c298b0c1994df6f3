"""Copier migration, before an update: stop when this release refuses a stored answer.

    python check_answers.py TEMPLATE_DIR ANSWERS_FILE GIVEN_KEYS_JSON

`copier update` reuses the answers in .copier-answers.yml, and with `--defaults` an answer
that the new release's validator (or choice list) refuses is silently replaced by the
question's default; asked interactively, the default is prefilled without a word. A
renamed distribution or service is not an update's business, so this runs first (a
`_migrations` entry with `_stage == "before"`, before any question) and checks every
stored answer with the new copier.yml: each `validator` rendered with the template's own
filters (extensions/), each `choices` list. An answer given on the command line
(`--data key=value`, in GIVEN_KEYS_JSON) is the user's decision and is not checked here:
Copier validates it. When any stored answer is refused, this names each one with the
validator's message and the command to run, and exits 1: Copier stops the update before
it changes a file.

Runs with the Python that runs Copier: the standard library, and PyYAML and Jinja2
(Copier's own dependencies).
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment
from jinja2.ext import Extension

# The template's extensions that define the filters validators use (copier.yml lists
# them in `_jinja_extensions`).
EXTENSIONS = (
    ("validation.py", "ValidationExtension"),
    ("naming.py", "NamingExtension"),
    ("escaping.py", "EscapingExtension"),
)


def template_environment(template: Path) -> Environment:
    """A Jinja environment with the template's own filters."""
    environment = Environment()
    for filename, class_name in EXTENSIONS:
        path = template / "extensions" / filename
        spec = importlib.util.spec_from_file_location(f"template_{path.stem}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        extension: type[Extension] = getattr(module, class_name)
        environment.add_extension(extension)
    return environment


def choice_values(choices: list[Any] | dict[str, Any]) -> list[Any]:
    """The values a `choices` list allows (a mapping's are its values)."""
    return list(choices.values()) if isinstance(choices, dict) else list(choices)


def refusals(
    questions: dict[str, Any], answers: dict[str, Any], environment: Environment
) -> dict[str, str]:
    """{question: why this release refuses its stored answer} for each refused one."""
    refused: dict[str, str] = {}
    for name, question in questions.items():
        if name.startswith("_") or not isinstance(question, dict) or name not in answers:
            continue
        value = answers[name]
        choices = question.get("choices")
        if choices is not None:
            allowed = choice_values(choices)
            if value not in allowed:
                listed = ", ".join(str(choice) for choice in allowed)
                refused[name] = f"not one of the choices: {listed}"
            continue
        validator = question.get("validator")
        if validator:
            message = environment.from_string(validator).render({**answers, name: value}).strip()
            if message:
                refused[name] = message
    return refused


def main(template: str, answers_file: str, given_keys: str) -> int:
    template_dir = Path(template)
    questions = yaml.safe_load((template_dir / "copier.yml").read_text(encoding="utf-8"))
    answers = yaml.safe_load(Path(answers_file).read_text(encoding="utf-8")) or {}
    given = set(json.loads(given_keys))
    environment = template_environment(template_dir)
    stored = {name: value for name, value in answers.items() if name not in given}
    refused = refusals(questions, stored, environment)
    if not refused:
        return 0
    print(
        f"This release of the template refuses {len(refused)} of the answers stored in "
        f"{answers_file}; the update would replace them with defaults, so it stops here "
        "and changes nothing:",
        file=sys.stderr,
    )
    for name, reason in refused.items():
        print(f"  {name}: {stored[name]!r}: {reason}", file=sys.stderr)
    examples = " ".join(f"--data {shlex.quote(f'{name}=NEW VALUE')}" for name in refused)
    print(
        "Choose a new value for each (a new project_slug renames the distribution and the "
        "default database and image names), then update with them:\n"
        f"  copier update {examples}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
