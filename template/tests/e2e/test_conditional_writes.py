"""Writes to an article honour `If-Match` (RFC 9110, 13.1.1): the `ETag` a read gave is
the version the write applies to; a stale one is refused with 412, so a client never
undoes a change it has not seen. The header is optional (no 428): without it a write is
unconditional. The race of two writes from one `ETag` is in `test_concurrent_writes.py`.
"""

import httpx
import pytest

from tests.helpers import API, create_article, error_of

WRITES = [
    ("patch", "", {"title": "Changed"}),
    ("post", "/publish", None),
    ("delete", "", None),
]


async def _read(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> httpx.Response:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
async def test_a_write_from_a_stale_etag_is_412_and_changes_nothing(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    method: str,
    suffix: str,
    body: dict[str, str] | None,
) -> None:
    article = await create_article(client, auth_headers)
    url = f"{API}/articles/{article['id']}"
    stale = (await _read(client, url, auth_headers)).headers["ETag"]
    changed = await client.patch(url, json={"content": "Edited"}, headers=auth_headers)
    assert changed.status_code == 200, changed.text

    response = await client.request(
        method, url + suffix, json=body, headers={**auth_headers, "If-Match": stale}
    )

    error_of(response, 412, "precondition_failed")
    after = await _read(client, url, auth_headers)
    assert after.json() == changed.json()  # untouched: still the other writer's version


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
async def test_a_write_from_the_current_etag_goes_through(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    method: str,
    suffix: str,
    body: dict[str, str] | None,
) -> None:
    article = await create_article(client, auth_headers)
    url = f"{API}/articles/{article['id']}"
    current = (await _read(client, url, auth_headers)).headers["ETag"]

    response = await client.request(
        method, url + suffix, json=body, headers={**auth_headers, "If-Match": current}
    )

    assert response.status_code in (200, 204), response.text
    if response.status_code == 200:
        # The new version's tag: what a read answers now, and what the next write sends.
        assert response.headers["ETag"] != current
        assert (await _read(client, url, auth_headers)).headers["ETag"] == response.headers["ETag"]


@pytest.mark.parametrize(
    ("if_match", "status"),
    [
        (None, 200),  # optional: never 428
        ("*", 200),  # any current version
        ('"not-a-version", {current}', 200),  # one of a list
        ("W/{current}", 412),  # weak tags never match a write (strong comparison)
        ('"not-a-version"', 412),
        # Not entity tags at all (RFC 9110, 8.8.3): they name no version, so match none.
        ("null", 412),
        ("not-quoted", 412),
        ('"a" "b"', 412),
        ('*, "not-a-version"', 412),  # `*` is only ever alone
    ],
)
async def test_if_match_compares_strongly(
    client: httpx.AsyncClient, auth_headers: dict[str, str], if_match: str | None, status: int
) -> None:
    article = await create_article(client, auth_headers)
    url = f"{API}/articles/{article['id']}"
    current = (await _read(client, url, auth_headers)).headers["ETag"]
    headers = dict(auth_headers)
    if if_match is not None:
        headers["If-Match"] = if_match.format(current=current)

    response = await client.patch(url, json={"title": "Changed"}, headers=headers)

    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        (['"not-a-version"', "{current}"], 200),  # the second line holds the current tag
        (["*", '"not-a-version"'], 412),  # combined: `*, "..."` names no version
    ],
)
async def test_if_match_lines_combine_into_one_list(
    client: httpx.AsyncClient, auth_headers: dict[str, str], lines: list[str], status: int
) -> None:
    """RFC 9110, 5.3: a list field sent on several lines is one list, not its first line."""
    article = await create_article(client, auth_headers)
    url = f"{API}/articles/{article['id']}"
    current = (await _read(client, url, auth_headers)).headers["ETag"]
    headers = [
        *auth_headers.items(),
        *(("If-Match", line.format(current=current)) for line in lines),
    ]

    response = await client.patch(url, json={"title": "Changed"}, headers=headers)

    assert response.status_code == status, response.text


async def test_etags_chain_from_write_to_write(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    article = await create_article(client, auth_headers)
    url = f"{API}/articles/{article['id']}"
    etag = (await _read(client, url, auth_headers)).headers["ETag"]

    for title in ("One", "Two", "Three"):
        response = await client.patch(
            url, json={"title": title}, headers={**auth_headers, "If-Match": etag}
        )
        assert response.status_code == 200, response.text
        etag = response.headers["ETag"]

    assert (await _read(client, url, auth_headers)).json()["title"] == "Three"


async def test_writes_document_if_match_412_and_the_new_etag(client: httpx.AsyncClient) -> None:
    document = (await client.get(f"{API}/openapi.json")).json()
    article = document["paths"][API + "/articles/{article_id}"]
    publish = document["paths"][API + "/articles/{article_id}/publish"]
    for operation in (article["patch"], article["delete"], publish["post"]):
        [if_match] = [p for p in operation["parameters"] if p["name"] == "If-Match"]
        assert if_match["schema"]["type"] == "string"  # never null: sent or left out
        assert operation["responses"]["412"]["x-error-codes"] == ["precondition_failed"]
        assert "428" not in operation["responses"]
    assert "ETag" in article["patch"]["responses"]["200"]["headers"]
    assert "ETag" in publish["post"]["responses"]["200"]["headers"]
