"""The Content-Disposition header for downloads, safe for any original file name."""

import unicodedata
from urllib.parse import quote


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact name in RFC 6266's `filename*`.

    Quotes, backslashes and control characters never reach the header, so a crafted
    name cannot end the quoted value or add header lines.
    """
    fallback = "".join(
        char
        for char in unicodedata.normalize("NFKD", filename)
        if char.isascii() and char.isprintable() and char not in '"\\'
    ).strip()
    encoded = quote(filename, safe="")
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"
