"""How many guesses a secret takes to find, estimated by zxcvbn (Dropbox's estimator).

zxcvbn matches the text against dictionaries (common passwords, English words, names,
the given context words), keyboard walks ("qwertyuiop"), sequences ("abcdef", "0123"),
repeats ("adminadmin"), dates and l33t substitutions ("P@ssw0rd"), and scores the
cheapest way to build the text from those parts (Wheeler, "zxcvbn: Low-Budget Password
Strength Estimation", USENIX Security 2016). What it cannot explain it prices as brute
force, 10 guesses per character: a conservative figure for random text.

NIST SP 800-63B-4 3.1.1.2 asks verifiers to refuse repetitive or sequential characters
and context-specific words; this is the password policy's and the SECRET_KEY guard's
way of doing so. The estimate takes 1 to 150 ms of CPU: call it off the event loop.
"""

import threading
from collections.abc import Sequence

from zxcvbn import zxcvbn

# zxcvbn's own cap (its running time grows fast with length); longer text is estimated
# on its first ESTIMATED_LENGTH characters, a lower bound for the whole.
ESTIMATED_LENGTH = 72
# zxcvbn keeps the context words of the call in a module-level dictionary: one call at a
# time, so two threads never score against each other's words.
_ONE_AT_A_TIME = threading.Lock()


def guesses_log10(text: str, context: Sequence[str] = ()) -> float:
    """log10 of the estimated number of guesses to find `text` (0 for the empty string);
    `context` holds words an attacker would try first (the email, the service's name)."""
    with _ONE_AT_A_TIME:
        result = zxcvbn(text[:ESTIMATED_LENGTH], user_inputs=list(context))
    return float(result["guesses_log10"])
