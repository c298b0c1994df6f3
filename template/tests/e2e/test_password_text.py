"""The same password typed differently (NFC or NFD) logs in; hashes made before
passwords were normalised keep working; a flood of hashing is refused, not queued."""

import asyncio
import unicodedata

import httpx
from sqlalchemy import select

from app.core.config import Settings
from app.core.resources import Resources
from app.main import create_app
from app.models.user import User
from tests.helpers import API, error_of, register_user, unique_email

NFC = unicodedata.normalize("NFC", "Mañana-Café-2024")
NFD = unicodedata.normalize("NFD", NFC)


async def test_password_registered_in_nfc_logs_in_typed_in_nfd(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register_user(client, email=email, password=NFC)

    response = await client.post(f"{API}/auth/login", json={"email": email, "password": NFD})

    assert response.status_code == 200, response.text


async def test_a_hash_of_the_unnormalised_password_still_logs_in_and_is_rehashed(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    email = unique_email()
    await register_user(client, email=email)
    legacy = resources.password_hasher._hash_sync(NFD)  # as hashed before normalisation
    async with resources.session_factory() as db:
        user = (await db.scalars(select(User).where(User.email == email))).one()
        user.hashed_password = legacy
        await db.commit()

    typed_as_before = await client.post(f"{API}/auth/login", json={"email": email, "password": NFD})

    assert typed_as_before.status_code == 200, typed_as_before.text
    async with resources.session_factory() as db:
        stored = (await db.scalars(select(User.hashed_password).where(User.email == email))).one()
    assert stored != legacy
    composed = await client.post(f"{API}/auth/login", json={"email": email, "password": NFC})
    assert composed.status_code == 200, composed.text


async def test_logins_past_the_hashing_queue_get_503_with_retry_after(
    settings: Settings, resources: Resources
) -> None:
    app = create_app(
        settings.model_copy(
            update={
                "password_hash_concurrency": 1,
                "password_hash_queue_size": 1,
                "bcrypt_rounds": 10,
            }
        )
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        payload = {"email": unique_email(), "password": "not-the-password-1"}
        responses = await asyncio.gather(
            *(client.post(f"{API}/auth/login", json=payload) for _ in range(8))
        )

    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(401) == 2, statuses  # one hashing, one waiting
    assert statuses.count(503) == 6, statuses
    busy = next(response for response in responses if response.status_code == 503)
    error = error_of(busy, 503, "server_busy")
    assert int(busy.headers["Retry-After"]) >= 1
    assert error["details"] == {"retry_after_seconds": int(busy.headers["Retry-After"])}
