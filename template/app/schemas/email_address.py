"""An email address as requests send it and responses return it, and as the OpenAPI
document states it.

email-validator decides what is an address (https://pypi.org/project/email-validator/),
with its defaults for addresses deliverable on the Internet and without a DNS query:

- an RFC 5322 dot-atom local part, Unicode allowed (RFC 6531);
- a domain name of two labels or more, the last ending in a letter, IDNA 2008 (UTS #46);
- no special-use domain (`email_validator.SPECIAL_USE_DOMAIN_NAMES`: RFC 6761's `test`,
  `invalid` and `localhost`, and `arpa`, `local`, `onion`), nor a subdomain of one;
- no quoted local part, no IP address literal, no display name, no surrounding spaces;
- at most 64 characters before the `@` (RFC 5321 4.5.3.1.1: email-validator's `strict`)
  and 254 octets in all (RFC 5321 4.5.3.1.3, after RFC 3696 errata 1690).

`format: idn-email` with `EMAIL_PATTERN` says all of that, exactly, for ASCII addresses
without an `xn--` label; for those and for Unicode the description names the rules a
regular expression cannot state (IDNA 2008, the characters email-validator calls unsafe),
and the server answers 422 with the reason.
pydantic's `EmailStr` is not used: it also takes `Name <address>` and surrounding spaces,
which no `idn-email` value is, so the document would say less than the server takes.
Responses return the address as stored (`app.services.user_service.normalize_email`):
normalised by email-validator, then in lower case; `idn-email`, as it may be Unicode.
"""

import re
from typing import Annotated

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from pydantic import AfterValidator, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

# RFC 5321 4.5.3.1.3 (254 octets). The document counts characters, which for ASCII are
# octets; a longer value is refused before email-validator (and IDNA) looks at it.
EMAIL_MAX_LENGTH = 254
LOCAL_PART_MAX_LENGTH = 64  # RFC 5321 4.5.3.1.1, counted in characters as email-validator does


def _any_case(label: str) -> str:
    """`label` in any letter case: a JSON Schema pattern (ECMA-262) has no `i` flag."""
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else re.escape(c) for c in label)


# The classes as ECMA-262, Python and Rust regular expressions all read them. Non-ASCII
# characters are admitted wherever Unicode may stand (email-validator checks them further).
_ATEXT = r'[^\x00-\x20"(),.:;<>@\[\\\]\x7F]'  # RFC 5322 atext: printable but no specials
_LABEL_CHAR = r"[^\x00-\x2C\x2E\x2F\x3A-\x40\x5B-\x60\x7B-\x7F]"  # letter, digit, hyphen
_LABEL_EDGE = r"[^\x00-\x2F\x3A-\x40\x5B-\x60\x7B-\x7F]"  # a label neither starts nor ends with -
_LETTER = r"[^\x00-\x40\x5B-\x60\x7B-\x7F]"
# RFC 1035: 63 characters at most; RFC 5891 4.2.3.1: `??--` only as an A-label (`xn--`).
_NOT_RESERVED = r"(?!(?![Xx][Nn])[^.][^.]--)"
_LABEL_INNER = _LABEL_CHAR + "{0,61}"
_LABEL = rf"{_NOT_RESERVED}{_LABEL_EDGE}(?:{_LABEL_INNER}{_LABEL_EDGE})?"
_LAST_LABEL = rf"{_NOT_RESERVED}(?:{_LABEL_EDGE}{_LABEL_INNER})?{_LETTER}"
_LOCAL_PART = "[^@]{1," + str(LOCAL_PART_MAX_LENGTH) + "}"
_SPECIAL_USE = "|".join(_any_case(name) for name in sorted(SPECIAL_USE_DOMAIN_NAMES))
EMAIL_PATTERN = (
    rf"^(?={_LOCAL_PART}@){_ATEXT}+(?:\.{_ATEXT}+)*"
    rf"@(?!(?:[^@]*\.)?(?:{_SPECIAL_USE})$)"
    rf"(?:{_LABEL}\.)+{_LAST_LABEL}$"
)
_SPECIAL_USE_LIST = ", ".join(f"`.{name}`" for name in sorted(SPECIAL_USE_DOMAIN_NAMES))
REQUEST_DESCRIPTION = (
    "An email address (RFC 5322 addr-spec; Unicode as RFC 6531 allows). A dot-atom of at "
    f"most {LOCAL_PART_MAX_LENGTH} characters before the `@`; after it, a domain of two "
    "labels or more, the last ending in a letter, not a special-use domain "
    f"({_SPECIAL_USE_LIST}, RFC 6761) nor under one. No quoted local part, IP literal, "
    f"display name or spaces; at most {EMAIL_MAX_LENGTH} octets in UTF-8. "
    "A label `xn--` must be a valid IDNA A-label; Unicode must pass IDNA 2008 (UTS #46) "
    "in the domain (whose ASCII form ends in a letter), and hold no space, separator, "
    "control, format, private-use or unassigned character nor start with a combining "
    "mark (email-validator's rules): 422 otherwise."
)
RESPONSE_DESCRIPTION = (
    "The address as given, normalised: NFC, the domain in Unicode (never `xn--`), all in "
    "lower case. Internationalised addresses are returned as such (`idn-email`)."
)


def _deliverable(address: str) -> str:
    """`address` normalised by email-validator, or a 422 `value_error` with its reason."""
    try:
        return validate_email(address, check_deliverability=False, strict=True).normalized
    except EmailNotValidError as error:
        raise PydanticCustomError(
            "value_error", "value is not a valid email address: {reason}", {"reason": str(error)}
        ) from None


# A request field: validated and normalised as above, documented exactly.
EmailAddress = Annotated[
    str,
    StringConstraints(max_length=EMAIL_MAX_LENGTH),
    AfterValidator(_deliverable),
    WithJsonSchema(
        {
            "type": "string",
            "format": "idn-email",
            "maxLength": EMAIL_MAX_LENGTH,
            "pattern": EMAIL_PATTERN,
            "description": REQUEST_DESCRIPTION,
            "examples": ["ada@example.com"],
        }
    ),
]
# A response field: an address the service took as `EmailAddress` and stored.
StoredEmailAddress = Annotated[
    str,
    WithJsonSchema({"type": "string", "format": "idn-email", "description": RESPONSE_DESCRIPTION}),
]
