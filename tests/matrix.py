"""The variant matrix, derived from copier.yml so a new answer is tested the day it is added."""

from __future__ import annotations

import functools
import itertools
import json
import os
from pathlib import Path
from typing import Any

import yaml

COPIER_YML = Path(__file__).resolve().parent.parent / "copier.yml"
# Questions with choices that change which code is rendered. Other questions with
# choices (the Python version) are covered separately on the default variant.
NON_TOGGLE_QUESTIONS = frozenset({"python_version"})
# Toggles whose answers change no Python file (only deployment files): the generated suites
# run once for them, at their default. tests/test_variants.py checks the claim on every render.
NO_PYTHON_QUESTIONS = frozenset({"deployment"})


@functools.cache  # copier.yml does not change during a run; parsing it is not free
def questions() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load(COPIER_YML.read_text())
    return {name: spec for name, spec in config.items() if not name.startswith("_")}


def choice_values(spec: dict[str, Any]) -> list[Any]:
    choices = spec.get("choices") or []
    return list(choices.values()) if isinstance(choices, dict) else list(choices)


def toggles() -> dict[str, list[Any]]:
    return {
        name: choice_values(spec)
        for name, spec in questions().items()
        if spec.get("choices") and name not in NON_TOGGLE_QUESTIONS
    }


def defaults() -> dict[str, Any]:
    return {name: spec["default"] for name, spec in toggles_specs().items()}


def toggles_specs() -> dict[str, dict[str, Any]]:
    return {name: questions()[name] for name in toggles()}


def all_variants() -> list[dict[str, Any]]:
    """Every combination of every toggle's choices (TEMPLATE_VARIANT=<name> keeps just one)."""
    from tests.rendering import variant_name

    names = sorted(toggles())
    variants = [
        dict(zip(names, combination, strict=True))
        for combination in itertools.product(*(toggles()[name] for name in names))
    ]
    only = os.environ.get("TEMPLATE_VARIANT")
    if only:
        variants = [answers for answers in variants if variant_name(answers) == only]
        if not variants:
            raise ValueError(f"TEMPLATE_VARIANT={only!r} names no variant of copier.yml")
    return variants


def suite_variants() -> list[dict[str, Any]]:
    """Every combination of the toggles that change Python code, the others at their
    default, the default variant first: the variants whose generated suites run (a defect
    that needs three answers together cannot slip through). TEMPLATE_VARIANT=<name> keeps
    just that variant, whatever its answers."""
    if os.environ.get("TEMPLATE_VARIANT"):
        return all_variants()
    default = defaults()
    chosen = [
        answers
        for answers in all_variants()
        if all(answers[name] == default[name] for name in NO_PYTHON_QUESTIONS)
    ]
    return sorted(chosen, key=lambda answers: answers != default)


def python_answers(answers: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The answers that change Python code (the key of a variant's Python sources)."""
    return tuple(sorted((k, v) for k, v in answers.items() if k not in NO_PYTHON_QUESTIONS))


def github_matrix() -> str:
    """The suite variants as a GitHub Actions matrix: a job per variant whose suite runs
    (every combination is rendered and checked by the `exhaustive` job)."""
    from tests.rendering import variant_name

    return json.dumps({"variant": [variant_name(answers) for answers in suite_variants()]})


if __name__ == "__main__":
    print(github_matrix())
