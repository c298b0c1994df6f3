"""The shipped list of the 20,000 most common passwords, read once.

`app/data/common-passwords.txt.gz` is the list Django ships (BSD-3-Clause, compiled by
Royce Williams from breach corpora), one lowercase entry a line. The password policy
refuses its entries; the SECRET_KEY guard refuses their digests.
"""

import gzip
from functools import cache
from pathlib import Path

COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent.parent / "data" / "common-passwords.txt.gz"


@cache
def common_passwords() -> frozenset[str]:
    """The list as a set of lowercase strings (about 20,000; 10 ms to read, then cached)."""
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines if line.strip())
