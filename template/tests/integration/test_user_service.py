import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.resources import Resources
from app.exceptions import ConflictException, UnauthorizedException
from app.schemas.user import UserCreate
from app.services.user_service import user_service
from tests.helpers import DEFAULT_PASSWORD, create_user


async def test_register_stores_lowercased_email_and_a_hash(
    db_session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(db_session, resources.password_hasher, email="Alice@Example.COM")

    assert user.email == "alice@example.com"
    assert user.hashed_password != DEFAULT_PASSWORD
    assert user.is_active
    assert not user.is_verified
    assert await user_service.get_by_email(db_session, "ALICE@example.com") == user


async def test_register_refuses_an_email_in_any_case(
    db_session: AsyncSession, resources: Resources
) -> None:
    await create_user(db_session, resources.password_hasher, email="bob@example.com")

    duplicate = UserCreate(email="BOB@Example.com", password=DEFAULT_PASSWORD)
    with pytest.raises(ConflictException):
        await user_service.register(db_session, duplicate, resources.password_hasher, ["author"])


async def test_authenticate_returns_the_user_for_correct_credentials(
    db_session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(db_session, resources.password_hasher, email="carol@example.com")

    found = await user_service.authenticate(
        db_session, "Carol@Example.com", DEFAULT_PASSWORD, resources.password_hasher
    )

    assert found.id == user.id


async def test_wrong_password_and_unknown_email_fail_identically(
    db_session: AsyncSession, resources: Resources
) -> None:
    hasher = resources.password_hasher
    await create_user(db_session, hasher, email="dave@example.com")

    with pytest.raises(UnauthorizedException) as wrong_password:
        await user_service.authenticate(db_session, "dave@example.com", "wrong-password", hasher)
    with pytest.raises(UnauthorizedException) as unknown_email:
        await user_service.authenticate(db_session, "nobody@example.com", DEFAULT_PASSWORD, hasher)

    assert type(wrong_password.value) is type(unknown_email.value)
    assert wrong_password.value.message == unknown_email.value.message
    assert wrong_password.value.headers == unknown_email.value.headers


async def test_inactive_user_cannot_authenticate(
    db_session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(db_session, resources.password_hasher, email="erin@example.com")
    user.is_active = False
    await db_session.commit()

    with pytest.raises(UnauthorizedException, match="Incorrect email or password"):
        await user_service.authenticate(
            db_session, "erin@example.com", DEFAULT_PASSWORD, resources.password_hasher
        )
    with pytest.raises(UnauthorizedException):
        await user_service.get_active(db_session, user.id)


async def test_get_active_refuses_an_unknown_user(db_session: AsyncSession) -> None:
    with pytest.raises(UnauthorizedException):
        await user_service.get_active(db_session, uuid.uuid4())


async def test_registering_with_a_role_that_does_not_exist_fails_loudly(
    db_session: AsyncSession, resources: Resources
) -> None:
    data = UserCreate(email="frank@example.com", password=DEFAULT_PASSWORD)

    with pytest.raises(RuntimeError, match=r"\['ghost'\] do not exist"):
        await user_service.register(db_session, data, resources.password_hasher, ["ghost"])
    assert await user_service.get_by_email(db_session, "frank@example.com") is None
