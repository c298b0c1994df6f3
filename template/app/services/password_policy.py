"""The password rule of every path that sets one (register, change, reset, create-admin).

Follows NIST SP 800-63B-4, section 3.1.1.2 (memorized secrets): a minimum length (15
by default, the rule for a password that is the only factor; `PASSWORD_MIN_LENGTH`), a
maximum well above 64 (`PASSWORD_MAX_LENGTH`), lengths counted in Unicode characters
after the normalisation the hash applies (RFC 8265's OpaqueString: NFC, see
`app.core.security.normalize_password`), so the 15 code points of NFD "한국말각글" count
as the 5 characters they are; every printable character and space allowed, no
composition rules, and a blocklist:

- the 20,000 most common passwords (`app.core.common_passwords`: the list
  Django ships, BSD-3-Clause, compiled by Royce Williams from breach corpora), compared
  case-insensitively, also with spaces removed and with digits and punctuation at
  either end stripped ("Password2024!" is "password");
- context-specific words: the account's email address and its name part, and the
  service's name;
- a single character repeated, or too few distinct characters;
- anything zxcvbn (`app.core.guessability`) finds in fewer than 10^10 guesses
  (`MIN_GUESSES_LOG10`, its top score): keyboard walks ("zxcvbnmasdfghjkl"), sequences
  ("123456789012345"), repeats ("iloveyouiloveyou", "adminadminadmin1"), l33t spellings
  of common words ("P@ssw0rdP@ssw0rd"), and the context words above in any of these.

A refusal is a 422 `validation_error` in the common shape whose `details` name the
field and the rule, so a client can show it next to the field.
"""

import re
from dataclasses import dataclass
from functools import partial
from typing import Self

from app.core.common_passwords import common_passwords
from app.core.config import Settings
from app.core.guessability import guesses_log10, run_estimate
from app.core.security import normalize_password
from app.exceptions import PasswordRefusedException

MIN_DISTINCT_CHARACTERS = 5
MIN_CONTEXT_WORD_LENGTH = 4
# zxcvbn's score 4 ("very unguessable: strong protection from offline slow-hash
# attacks"): a passphrase of three or four common words clears it.
MIN_GUESSES_LOG10 = 10
_EDGES = re.compile(r"^[\W\d_]+|[\W\d_]+$")


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    min_length: int
    max_length: int
    context_words: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            settings.password_min_length,
            settings.password_max_length,
            (settings.project_name,),
        )

    def problem(self, password: str, *, email: str) -> str | None:
        """Why `password` is refused for the account `email`, or None when it is acceptable.

        Takes up to about 0.2 s of CPU (the zxcvbn estimate): from async code, await
        `ensure_acceptable`, which runs it in the estimating thread. Every rule reads the
        password as it will be hashed: normalised (NIST SP 800-63B-4 3.1.1.2: length in
        characters after normalisation).
        """
        normalized = normalize_password(password)
        if normalized is None:
            return "use printable characters only (no control or unassigned characters)"
        password = normalized
        if len(password) < self.min_length:
            return f"use at least {self.min_length} characters"
        if len(password) > self.max_length:
            return f"use at most {self.max_length} characters"
        lowered = password.lower()
        candidates = {lowered, lowered.replace(" ", ""), _EDGES.sub("", lowered)}
        if not candidates.isdisjoint(common_passwords()):
            return "it is one of the most common passwords"
        email = email.strip().lower()
        name = email.partition("@")[0]
        words = [email, name, *(word.lower() for word in self.context_words)]
        if any(len(word) >= MIN_CONTEXT_WORD_LENGTH and word in lowered for word in words):
            return "it contains your email address or the service's name"
        if len(set(password)) < MIN_DISTINCT_CHARACTERS:
            return f"use at least {MIN_DISTINCT_CHARACTERS} different characters"
        if guesses_log10(password, words) < MIN_GUESSES_LOG10:
            return "it is easy to guess (a pattern, a sequence, a repeat or common words)"
        return None

    async def ensure_acceptable(
        self, password: str, *, email: str, field: str = "password"
    ) -> None:
        """Raise a 422 `password_refused` naming `field` and the rule when the password is
        refused; ServerBusyException (503) when too many checks are waiting already."""
        reason = await run_estimate(partial(self.problem, password, email=email))
        if reason is not None:
            raise PasswordRefusedException(field, reason)
