"""How many guesses a secret takes to find, estimated by zxcvbn (Dropbox's estimator).

zxcvbn matches the text against dictionaries (common passwords, English words, names,
the given context words), keyboard walks ("qwertyuiop"), sequences ("abcdef", "0123"),
repeats ("adminadmin"), dates and l33t substitutions ("P@ssw0rd"), and scores the
cheapest way to build the text from those parts (Wheeler, "zxcvbn: Low-Budget Password
Strength Estimation", USENIX Security 2016). What it cannot explain it prices as brute
force, 10 guesses per character: a conservative figure for random text.

NIST SP 800-63B-4 3.1.1.2 asks verifiers to refuse repetitive or sequential characters
and context-specific words; this is the password policy's and the SECRET_KEY guard's
way of doing so.

Bounded work: an estimate takes at most about 0.2 s of CPU (ESTIMATE_WORK_BUDGET), and
requests wait for one in a queue of their own (`run_estimate`): at most
MAX_WAITING_ESTIMATES of them, past which a request gets 503 at once, like the password
hashes' queue (`app.core.security.PasswordHasher`).
"""

import asyncio
import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from zxcvbn import zxcvbn
from zxcvbn.matching import L33T_TABLE, relevant_l33t_subtable

from app.exceptions import ServerBusyException

# zxcvbn's own cap (its running time grows fast with length); longer text is estimated
# on its first ESTIMATED_LENGTH characters, a lower bound for the whole.
ESTIMATED_LENGTH = 72
# zxcvbn tries every reading of the characters that stand for letters ("4" and "@" for
# a; "1", "!" and "|" for i or l; ...) and matches each reading against its dictionaries,
# in time that grows with the square of the length: 72 characters made of those alone
# have 576 readings and took 3 to 9 s. The estimate is made on the longest prefix whose
# readings x length² stay within this (about 0.2 s, one password hash's time), again a
# lower bound for the whole. A 72-character passphrase has a few readings and is
# estimated whole; random text of 64 printable characters needs a shorter prefix 1 time
# in 100 (at least 52 characters).
ESTIMATE_WORK_BUDGET = 200_000
# The most readings any text has (every l33t character in it: 576), and so the shortest
# prefix the budget leaves (18 characters): random, it is past the policy's 10^10
# guesses; a pattern, it is refused as one.
MAX_L33T_READINGS = math.prod(len(characters) for characters in L33T_TABLE.values())
MIN_ESTIMATED_LENGTH = math.isqrt(ESTIMATE_WORK_BUDGET // MAX_L33T_READINGS)
# Estimates waiting for the estimating thread; past this a request is refused (503).
MAX_WAITING_ESTIMATES = 16
RETRY_AFTER_SECONDS = 1
# zxcvbn keeps the context words of the call in a module-level dictionary: one call at a
# time, so two threads never score against each other's words.
_ONE_AT_A_TIME: threading.Lock
_estimating: ThreadPoolExecutor
_waiting: int


def _start_estimating() -> None:
    """A new estimating thread pool, queue count and lock, at import and again in every
    forked child (gunicorn --preload, multiprocessing's "fork"): a child inherits the
    executor without its thread, which would never run an estimate, and possibly a lock
    held by a thread it does not have."""
    global _ONE_AT_A_TIME, _estimating, _waiting
    _ONE_AT_A_TIME = threading.Lock()
    _estimating = ThreadPoolExecutor(max_workers=1, thread_name_prefix="guessability")
    _waiting = 0


_start_estimating()
os.register_at_fork(after_in_child=_start_estimating)


def l33t_readings(text: str) -> int:
    """How many readings of `text`'s l33t characters zxcvbn would try (an upper bound)."""
    table = relevant_l33t_subtable(text, L33T_TABLE)
    return math.prod(len(characters) for characters in table.values())


def estimated_prefix(text: str) -> str:
    """The part of `text` that is estimated: the longest prefix of at most
    ESTIMATED_LENGTH characters within ESTIMATE_WORK_BUDGET."""
    length = min(len(text), ESTIMATED_LENGTH)
    while (
        length > MIN_ESTIMATED_LENGTH
        and l33t_readings(text[:length]) * length**2 > ESTIMATE_WORK_BUDGET
    ):
        length -= 1
    return text[:length]


def guesses_log10(text: str, context: Sequence[str] = ()) -> float:
    """log10 of the estimated number of guesses to find `text` (0 for the empty string);
    `context` holds words an attacker would try first (the email, the service's name).
    Blocking, up to about 0.2 s of CPU: from async code, call it through `run_estimate`."""
    with _ONE_AT_A_TIME:
        result = zxcvbn(estimated_prefix(text), user_inputs=list(context))
    return float(result["guesses_log10"])


async def run_estimate(function: Callable[[], str | None]) -> str | None:
    """`function` (a check that estimates, with `guesses_log10`: the reason it refuses,
    or None) in the estimating thread.
    Raises ServerBusyException (503, Retry-After) when MAX_WAITING_ESTIMATES are waiting
    already: a flood of costly estimates cannot queue without bound."""
    global _waiting  # one queue per process, like the thread it feeds
    if _waiting >= MAX_WAITING_ESTIMATES:
        raise ServerBusyException(retry_after_seconds=RETRY_AFTER_SECONDS)
    _waiting += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(_estimating, function)
    finally:
        _waiting -= 1
