"""A stricter password rule for accounts created by operators (`app.cli create-admin`).

No dictionary download: a minimum length, a short list of the passwords attackers try
first, the account's own email name, and too little variety are refused.
"""

ADMIN_PASSWORD_MIN_LENGTH = 12
MIN_DISTINCT_CHARACTERS = 6

COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1q2w3e4r5t6y",
        "administrator",
        "changeme",
        "correcthorsebatterystaple",
        "iloveyou",
        "letmein",
        "passw0rd",
        "password",
        "qwerty",
        "qwertyuiop",
        "qwertyuiopasdf",
        "superuser",
        "trustno1",
        "welcome",
        "abc123",
        "admin",
        "dragon",
        "football",
        "master",
        "monkey",
        "sunshine",
    }
)


def weak_password_reason(password: str, *, email: str) -> str | None:
    """Why the password is too weak for an administrator, or None if it is acceptable."""
    if len(password) < ADMIN_PASSWORD_MIN_LENGTH:
        return f"use at least {ADMIN_PASSWORD_MIN_LENGTH} characters"
    # "Password2024!" is "password" with decoration: compare the letters only.
    letters = "".join(character for character in password.lower() if character.isalpha())
    if password.lower() in COMMON_PASSWORDS or letters in COMMON_PASSWORDS:
        return "it is one of the most common passwords"
    name = email.partition("@")[0].lower()
    if len(name) >= 3 and name in password.lower():
        return "it contains the account's email name"
    if len(set(password)) < MIN_DISTINCT_CHARACTERS:
        return f"use at least {MIN_DISTINCT_CHARACTERS} different characters"
    return None
