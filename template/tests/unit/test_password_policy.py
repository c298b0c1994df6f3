"""The password policy (`app.services.password_policy`), rule by rule."""

import pytest

from app.core.config import Settings
from app.exceptions import PasswordRefusedException
from app.services.password_policy import MIN_DISTINCT_CHARACTERS, PasswordPolicy
from tests.helpers import SUITE_PASSWORDS, unique_email

EMAIL = "ops.lead@example.com"
SERVICE_NAME = Settings.model_fields["project_name"].default
POLICY = PasswordPolicy(min_length=15, max_length=128, context_words=("Acme Service",))


def test_the_length_limits_are_inclusive() -> None:
    assert POLICY.problem("battery cloud s", email=EMAIL) is None  # 15
    assert POLICY.problem("battery cloud ", email=EMAIL) == "use at least 15 characters"
    assert POLICY.problem("x" * 129, email=EMAIL) == "use at most 128 characters"
    longest = ("horse staple battery cloud zebra lantern quiet " * 3)[:128]
    assert POLICY.problem(longest, email=EMAIL) is None


@pytest.mark.parametrize(
    "password",
    [
        "manchesterunited",  # on the list as it is
        "ManchesterUnited",  # in another case
        "Manchester United",  # with spaces
        "2024!manchesterunited!!",  # digits and symbols around a listed one
    ],
)
def test_common_passwords_are_refused_however_written(password: str) -> None:
    assert POLICY.problem(password, email=EMAIL) == "it is one of the most common passwords"


@pytest.mark.parametrize(
    "password", ["my ops.lead@example.com key", "OPS.LEAD rules the day", "acme service!!! forever"]
)
def test_context_words_are_refused(password: str) -> None:
    assert POLICY.problem(password, email=EMAIL) == (
        "it contains your email address or the service's name"
    )


def test_a_context_word_of_four_characters_counts() -> None:
    """The email's name part from MIN_CONTEXT_WORD_LENGTH (4) characters on."""
    assert POLICY.problem("olaf rides the northern train", email="olaf@example.com") == (
        "it contains your email address or the service's name"
    )
    assert POLICY.problem("olf rides the northern train", email="olf@example.com") is None


def test_the_service_name_comes_from_the_settings() -> None:
    policy = PasswordPolicy.from_settings(Settings(_env_file=None, project_name="Quill Ledger"))

    assert policy.problem("my quill ledger passphrase", email=EMAIL) == (
        "it contains your email address or the service's name"
    )


def test_zxcvbn_weighs_the_context_words() -> None:
    """A l33t spelling of the email's name is no substring of it, but zxcvbn, given the
    context words, finds it in a few guesses."""
    assert POLICY.problem("Z0rbl4x.Qu1nt!!", email="zorblax.quint@example.com") == (
        "it is easy to guess (a pattern, a sequence, a repeat or common words)"
    )
    assert POLICY.problem("Z0rbl4x.Qu1nt!!", email=EMAIL) is None


def test_too_few_distinct_characters_are_refused() -> None:
    assert POLICY.problem("ab" * 10, email=EMAIL) == (
        f"use at least {MIN_DISTINCT_CHARACTERS} different characters"
    )
    assert len(set("q7!Zxq!7Zx7qZ!x!")) == MIN_DISTINCT_CHARACTERS
    assert POLICY.problem("q7!Zxq!7Zx7qZ!x!", email=EMAIL) is None


@pytest.mark.parametrize(
    "password",
    [
        "passwordpassword",
        "123456789012345",
        "zxcvbnmasdfghjkl",
        "iloveyouiloveyou",
        "P@ssw0rdP@ssw0rd",
        "adminadminadmin1",
        "qwertyuiopasdfgh",
        "abcdefghijklmnop",
    ],
)
def test_repeats_sequences_and_keyboard_walks_are_refused(password: str) -> None:
    assert POLICY.problem(password, email=EMAIL) == (
        "it is easy to guess (a pattern, a sequence, a repeat or common words)"
    )


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "horse staple battery cloud",
        "a completely new passphrase",
        "ünïcödé pässwörd ñ日本語",
        "Tr0ub4dor&3-but-longer",
    ],
)
def test_passphrases_are_accepted(password: str) -> None:
    assert POLICY.problem(password, email=EMAIL) is None


async def test_a_refusal_is_a_password_refused_error_naming_the_field_and_the_rule() -> None:
    with pytest.raises(PasswordRefusedException) as refused:
        await POLICY.ensure_acceptable("too short", email=EMAIL)
    assert refused.value.code == "password_refused"
    assert refused.value.message == "Password refused: use at least 15 characters"
    assert refused.value.details == [
        {
            "loc": ["body", "password"],
            "message": "use at least 15 characters",
            "type": "password_refused",
        }
    ]

    with pytest.raises(PasswordRefusedException) as refused:
        await POLICY.ensure_acceptable("manchesterunited", email=EMAIL, field="new_password")
    assert refused.value.details == [
        {
            "loc": ["body", "new_password"],
            "message": "it is one of the most common passwords",
            "type": "password_refused",
        }
    ]

    await POLICY.ensure_acceptable("correct horse battery staple", email=EMAIL)


@pytest.mark.parametrize("password", SUITE_PASSWORDS)
@pytest.mark.parametrize(
    "service_name",
    # This service's, and names that refused the suite's word passphrases of old.
    [SERVICE_NAME, "Passphrase", "Brand", "Horse", "New", "Password"],
)
def test_the_suites_passwords_pass_the_policy_whatever_the_service_is_named(
    password: str, service_name: str
) -> None:
    policy = PasswordPolicy(min_length=15, max_length=128, context_words=(service_name,))
    assert policy.problem(password, email=unique_email()) is None
