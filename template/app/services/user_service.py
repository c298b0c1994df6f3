import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.cache import Cache
from app.core.security import PasswordHasher
from app.exceptions import ConflictException, UnauthorizedException
from app.models.user import User
from app.schemas.user import UserCreate, UserSnapshot, UserUpdate
from app.services.crud_service import CRUDService

# Authenticated requests read the user from this cache entry instead of the database;
# every write to a user below drops it, so a change is seen by the next request.
USER_SNAPSHOT_TTL_SECONDS = 300


def normalize_email(email: str) -> str:
    return email.strip().lower()


def user_snapshot_key(user_id: uuid.UUID) -> str:
    return f"auth:user:{user_id}"


class UserService(CRUDService[User, UserCreate, UserUpdate]):
    def __init__(self) -> None:
        super().__init__(User, resource_name="User")

    async def get_by_email(self, db: AsyncSession, email: str) -> User | None:
        found: User | None = await db.scalar(
            select(User).where(User.email == normalize_email(email))
        )
        return found

    async def register(self, db: AsyncSession, data: UserCreate, hasher: PasswordHasher) -> User:
        email = normalize_email(data.email)
        if await self.get_by_email(db, email) is not None:
            raise ConflictException("An account with this email already exists")
        user = User(
            email=email,
            hashed_password=await hasher.hash(data.password),
            full_name=data.full_name,
        )
        db.add(user)
        # A concurrent registration of the same email still ends as a 409, via the unique index.
        await self.commit(db)
        return user

    async def authenticate(
        self, db: AsyncSession, email: str, password: str, hasher: PasswordHasher
    ) -> User:
        """The user these credentials belong to; the same error (and cost) for every failure."""
        user = await self.get_by_email(db, email)
        # Hand the connection back before hashing: a queue of logins waiting for bcrypt
        # must not hold the pool that every other request needs.
        await db.commit()
        if user is None:
            await hasher.verify_dummy(password)
            raise UnauthorizedException("Incorrect email or password")
        if not await hasher.verify(password, user.hashed_password) or not user.is_active:
            raise UnauthorizedException("Incorrect email or password")
        return user

    async def update_profile(
        self, db: AsyncSession, cache: Cache, user_id: uuid.UUID, data: UserUpdate
    ) -> User:
        user = await self.get_active(db, user_id)
        await self.update(db, user, data)
        await self.forget_snapshot(cache, user_id)
        return user

    async def set_active(
        self, db: AsyncSession, cache: Cache, user_id: uuid.UUID, *, active: bool
    ) -> User:
        user = await self.get_by_id(db, user_id)
        user.is_active = active
        await self.commit(db)
        await self.forget_snapshot(cache, user_id)
        return user

    async def load_snapshot(
        self, db: AsyncSession, cache: Cache, user_id: uuid.UUID
    ) -> UserSnapshot:
        user = await self.get_active(db, user_id)
        snapshot = UserSnapshot.model_validate(user)
        await cache.set(
            user_snapshot_key(user_id), snapshot.model_dump_json(), USER_SNAPSHOT_TTL_SECONDS
        )
        return snapshot

    async def forget_snapshot(self, cache: Cache, user_id: uuid.UUID) -> None:
        await cache.delete(user_snapshot_key(user_id))

    async def get_active(self, db: AsyncSession, user_id: uuid.UUID) -> User:
        """The user an access token names, if it still exists and is active."""
        user = await db.get(User, user_id)
        if user is None or not user.is_active:
            raise UnauthorizedException("User is inactive or no longer exists")
        return user


user_service = UserService()
