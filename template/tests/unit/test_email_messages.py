"""Email messages: header injection is impossible, templates render safely."""

import jinja2
import pytest

from app.email.base import EmailMessage, InvalidEmailError
from app.email.rendering import render_email

VALID = {
    "to_email": "ada@example.com",
    "subject": "Hello",
    "html_body": "<p>Hi</p>",
    "from_email": "noreply@example.com",
    "from_name": "The Service",
}


@pytest.mark.parametrize("field", ["to_email", "subject", "from_email", "from_name"])
@pytest.mark.parametrize("line_break", ["\r\n", "\n", "\r"])
def test_a_line_break_in_a_header_value_is_refused(field: str, line_break: str) -> None:
    values = VALID | {field: f"{VALID[field]}{line_break}Bcc: victim@example.com"}

    with pytest.raises(InvalidEmailError, match=f"{field} must not contain line breaks"):
        EmailMessage(**values)


def test_line_breaks_in_the_bodies_are_fine() -> None:
    message = EmailMessage(**(VALID | {"html_body": "<p>a</p>\n<p>b</p>"}), text_body="a\r\nb")

    assert message.text_body == "a\r\nb"


def test_html_bodies_escape_values_and_text_bodies_keep_them() -> None:
    rendered = render_email("verify_email", product_name="<script>x</script> & co", link="x")

    assert "&lt;script&gt;x&lt;/script&gt; &amp; co" in rendered.html
    assert "<script>" not in rendered.html
    assert "<script>x</script> & co" in rendered.text


@pytest.mark.parametrize("template", ["welcome", "verify_email", "reset_password"])
def test_link_templates_carry_the_link_in_both_bodies(template: str) -> None:
    link = "https://app.example.com/confirm?token=abc&next=%2F"

    rendered = render_email(template, product_name="Svc", link=link)

    assert 'href="https://app.example.com/confirm?token=abc&amp;next=%2F"' in rendered.html
    assert link in rendered.text


def test_a_missing_value_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render_email("verify_email", product_name="Svc")
