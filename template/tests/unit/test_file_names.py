"""What a client's file name and content type may become on the server."""

from urllib.parse import unquote

import pytest

from app.services.file_service import normalize_content_type, safe_original_name
from app.storage.disposition import content_disposition


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ada\\photo.png", "photo.png"),
        ("a\u0000b\r\nc.txt", "abc.txt"),
        ("", "upload"),
        (None, "upload"),
        ("..", "upload"),
        ("x" * 300 + ".txt", "x" * 255),
    ],
)
def test_the_original_name_is_a_bare_printable_name(sent: str | None, kept: str) -> None:
    assert safe_original_name(sent) == kept


@pytest.mark.parametrize(
    ("sent", "normalized"),
    [
        ("image/PNG", "image/png"),
        ("text/plain; charset=utf-8", "text/plain"),
        (None, "application/octet-stream"),
    ],
)
def test_content_types_are_compared_without_parameters(sent: str | None, normalized: str) -> None:
    assert normalize_content_type(sent) == normalized


@pytest.mark.parametrize(
    "name", ['say "hi".txt', "back\\slash.txt", "line\r\nX-Evil: 1.txt", "日本語.pdf", "plain.txt"]
)
def test_content_disposition_cannot_be_broken_out_of(name: str) -> None:
    header = content_disposition(name)

    assert "\r" not in header
    assert "\n" not in header
    assert header.startswith('attachment; filename="')
    fallback = header.split('filename="', 1)[1].split('"; filename*=', 1)[0]
    assert '"' not in fallback
    assert "\\" not in fallback
    assert unquote(header.split("filename*=UTF-8''", 1)[1]) == name


def test_a_name_without_ascii_characters_falls_back_to_download() -> None:
    assert content_disposition("日本語").startswith('attachment; filename="download";')
