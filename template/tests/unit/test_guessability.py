"""The guessability estimate's work is bounded whatever the text (app/core/guessability.py)."""

import asyncio
import os
import warnings

from app.core.guessability import (
    ESTIMATE_WORK_BUDGET,
    ESTIMATED_LENGTH,
    MIN_ESTIMATED_LENGTH,
    estimated_prefix,
    guesses_log10,
    l33t_readings,
    run_estimate,
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


def test_a_forked_child_runs_estimates_of_its_own() -> None:
    """The estimating thread is started in this process first; a child forked after it
    (gunicorn --preload) must not wait forever on the thread it did not inherit."""

    def estimate() -> str | None:
        return None if guesses_log10("correct horse battery staple") > 0 else "none"

    assert asyncio.run(run_estimate(estimate)) is None  # the parent's thread now exists
    with warnings.catch_warnings():  # Python 3.12+ warns of fork() beside threads
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:
        try:
            answer = asyncio.run(asyncio.wait_for(run_estimate(estimate), timeout=10))
            os._exit(0 if answer is None else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
