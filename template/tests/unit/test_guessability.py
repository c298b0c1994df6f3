"""The guessability estimate's work is bounded whatever the text (app/core/guessability.py)."""

from app.core.guessability import (
    ESTIMATE_WORK_BUDGET,
    ESTIMATED_LENGTH,
    MIN_ESTIMATED_LENGTH,
    estimated_prefix,
    guesses_log10,
    l33t_readings,
)
from app.services.password_policy import MIN_GUESSES_LOG10

# Every character one zxcvbn reads as a letter (l33t), 72 of them: 576 readings, each
# matched against the dictionaries; estimated whole, it took 3 to 9 s of CPU.
L33T_SOUP = ("4@8({[<3691!|70$5+%2" * 4)[:ESTIMATED_LENGTH]


def test_text_full_of_l33t_characters_is_estimated_on_a_prefix_within_the_budget() -> None:
    prefix = estimated_prefix(L33T_SOUP)

    assert l33t_readings(L33T_SOUP) == 576
    assert MIN_ESTIMATED_LENGTH <= len(prefix) < len(L33T_SOUP)
    assert l33t_readings(prefix) * len(prefix) ** 2 <= ESTIMATE_WORK_BUDGET
    # Random-looking: its prefix alone is past the policy's bar, so it is not refused.
    assert guesses_log10(L33T_SOUP) >= MIN_GUESSES_LOG10


def test_ordinary_text_is_estimated_whole() -> None:
    passphrase = "Tr0ub4dor&3 correct horse battery staple, 1 more time!"

    assert estimated_prefix(passphrase) == passphrase
    assert estimated_prefix(passphrase * 2) == (passphrase * 2)[:ESTIMATED_LENGTH]
