import uuid
from collections.abc import Collection
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, distinct, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.core.cache import Cache
from app.core.rbac import split_permission
from app.core.security import PasswordHasher
from app.exceptions import ConflictException, NotFoundException, UnauthorizedException
from app.models import Action, Feature, Permission, Role, User, role_permissions, user_roles
from app.schemas.user import UserCreate, UserListQuery, UserSnapshot, UserUpdate
from app.services.article_service import forget_cached_articles
from app.services.crud_service import CRUDService
from app.services.listing import Listing, RelatedList

# Authenticated requests read the user from this cache entry instead of the database;
# every write to a user below drops it or makes it stale, so the next request sees it.
USER_SNAPSHOT_TTL_SECONDS = 300
# Read with every snapshot; any change to who may do what moves it, so every snapshot
# built before the change is rebuilt on its next use. Never expires.
PERMISSIONS_VERSION_KEY = "auth:permissions-version"

WITH_ROLES = (selectinload(User.roles),)

# Access must stay administrable through the API: each of these permissions keeps at
# least one active holder. (`python -m app.cli create-admin` remains the way back for an
# operator with shell access.)
ACCESS_ADMIN_PERMISSIONS = ("users:admin", "roles:admin")

USER_LISTING = Listing(
    query=UserListQuery,
    id_column=User.id,
    columns={
        "id": User.id,
        "email": User.email,
        "full_name": User.full_name,
        "is_active": User.is_active,
        "is_verified": User.is_verified,
        "created_at": User.created_at,
    },
    related_lists={
        "roles": RelatedList(
            lambda user_ids: (
                select(user_roles.c.user_id, Role.id, Role.name)
                .join(Role, Role.id == user_roles.c.role_id)
                .where(user_roles.c.user_id.in_(user_ids))
                .order_by(Role.name)
            ),
            item_fields=("id", "name"),
        )
    },
    sorts={"created_at": User.created_at, "email": User.email},
    filters={
        "is_active": lambda active: User.is_active == active,
        "is_verified": lambda verified: User.is_verified == verified,
        "role": lambda name: User.id.in_(
            select(user_roles.c.user_id)
            .join(Role, Role.id == user_roles.c.role_id)
            .where(Role.name == name)
        ),
        "created_after": lambda moment: User.created_at >= moment,
        "created_before": lambda moment: User.created_at < moment,
    },
)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def user_snapshot_key(user_id: uuid.UUID) -> str:
    return f"auth:user:{user_id}"


def cached_snapshot(cached: str | None, permissions_version: str | None) -> UserSnapshot | None:
    """The cached snapshot, unless missing or built before the latest access change."""
    if cached is None or permissions_version is None:
        return None
    snapshot = _parse_snapshot(cached)
    return snapshot if snapshot.permissions_version == permissions_version else None


@lru_cache(maxsize=2048)
def _parse_snapshot(cached: str) -> UserSnapshot:
    """Parsed once per distinct cache entry: a user's requests read the same entry until
    something about them changes, and then the entry (so the key here) changes too."""
    return UserSnapshot.model_validate_json(cached)


class UserService(CRUDService[User, UserCreate, UserUpdate]):
    def __init__(self) -> None:
        super().__init__(User, resource_name="User")

    async def get_by_email(self, db: AsyncSession, email: str) -> User | None:
        found: User | None = await db.scalar(
            select(User).where(User.email == normalize_email(email))
        )
        return found

    async def register(
        self,
        db: AsyncSession,
        data: UserCreate,
        hasher: PasswordHasher,
        roles: Collection[str],
        *,
        is_verified: bool = False,
    ) -> User:
        email = normalize_email(data.email)
        if await self.get_by_email(db, email) is not None:
            raise ConflictException("An account with this email already exists")
        found = list(await db.scalars(select(Role).where(Role.name.in_(roles))))
        if missing := set(roles) - {role.name for role in found}:
            # A deployment problem, not the client's: fail loudly (500, logged).
            raise RuntimeError(
                f"roles {sorted(missing)} do not exist: run `python -m app.cli seed`"
                " or correct DEFAULT_ROLE"
            )
        user = User(
            email=email,
            hashed_password=await hasher.hash(data.password),
            full_name=data.full_name,
            is_verified=is_verified,
            roles=found,
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
        if "full_name" in data.model_fields_set:
            await forget_cached_articles(cache)  # cached articles show their author's name
        return user

    # Administration -----------------------------------------------------------

    async def list_with_roles(self, db: AsyncSession, query: UserListQuery) -> dict[str, Any]:
        """One page of users with their roles, as JSON-ready data."""
        return await USER_LISTING.page(db, query)

    async def get_with_roles(self, db: AsyncSession, user_id: uuid.UUID) -> User:
        return await self.get_by_id(db, user_id, options=WITH_ROLES)

    async def set_active(
        self, db: AsyncSession, cache: Cache, user_id: uuid.UUID, *, active: bool
    ) -> User:
        user = await self.get_with_roles(db, user_id)
        user.is_active = active
        if not active:
            await self.ensure_administrators_remain(db)
        await self.commit(db)
        await self.invalidate_access(cache)
        return user

    async def add_role(
        self, db: AsyncSession, cache: Cache, user_id: uuid.UUID, role_id: uuid.UUID
    ) -> User:
        user = await self.get_with_roles(db, user_id)
        role = await db.get(Role, role_id)
        if role is None:
            raise NotFoundException("Role not found")
        if role not in user.roles:
            user.roles.append(role)
            await self.commit(db)
            await self.invalidate_access(cache)
        return user

    async def remove_role(
        self, db: AsyncSession, cache: Cache, user_id: uuid.UUID, role_id: uuid.UUID
    ) -> User:
        user = await self.get_with_roles(db, user_id)
        held = [role for role in user.roles if role.id == role_id]
        if not held:
            raise NotFoundException("The user does not hold this role")
        user.roles.remove(held[0])
        await self.ensure_administrators_remain(db)
        await self.commit(db)
        await self.invalidate_access(cache)
        return user

    async def ensure_administrators_remain(self, db: AsyncSession) -> None:
        """Refuse (409, rolled back) the pending change if it takes the last active holder
        of one of the `ACCESS_ADMIN_PERMISSIONS` away. Call it before committing."""
        with db.no_autoflush:
            # Changes that take access away queue up here, so two administrators removing
            # each other at the same moment cannot both succeed (a no-op on SQLite, whose
            # writers are serialized anyway).
            await db.execute(select(Role.id).where(Role.is_system).with_for_update())
            before = await self._access_admin_holders(db)
        await db.flush()
        after = await self._access_admin_holders(db)
        if lost := [name for name in ACCESS_ADMIN_PERMISSIONS if before[name] and not after[name]]:
            await db.rollback()
            raise ConflictException(
                f"This would leave no active user with {lost[0]!r}; give it to someone else first"
            )

    @staticmethod
    async def _access_admin_holders(db: AsyncSession) -> dict[str, int]:
        """How many active users hold each access-administering permission."""
        pairs = [split_permission(name) for name in ACCESS_ADMIN_PERMISSIONS]
        rows = await db.execute(
            select(Feature.name, Action.name, func.count(distinct(User.id)))
            .select_from(User)
            .join(user_roles, user_roles.c.user_id == User.id)
            .join(role_permissions, role_permissions.c.role_id == user_roles.c.role_id)
            .join(Permission, Permission.id == role_permissions.c.permission_id)
            .join(Feature, Feature.id == Permission.feature_id)
            .join(Action, Action.id == Permission.action_id)
            .where(
                User.is_active,
                or_(*(and_(Feature.name == f, Action.name == a) for f, a in pairs)),
            )
            .group_by(Feature.name, Action.name)
        )
        counts = {f"{feature}:{action}": holders for feature, action, holders in rows.all()}
        return {name: counts.get(name, 0) for name in ACCESS_ADMIN_PERMISSIONS}

    # Snapshots ----------------------------------------------------------------

    async def load_snapshot(
        self,
        db: AsyncSession,
        cache: Cache,
        user_id: uuid.UUID,
        permissions_version: str | None,
    ) -> UserSnapshot:
        """Build the user's snapshot from the database (two queries) and cache it.

        `permissions_version` must have been read *before* this call: a change
        committed while the snapshot is being built then moves the version past
        it, and the stale snapshot is never used.
        """
        if permissions_version is None:
            permissions_version = await self._start_permissions_version(cache)
        user = await self.get_active(db, user_id)
        roles, permissions = await self._resolve_access(db, user_id)
        snapshot = UserSnapshot(
            id=user.id,
            email=user.email,
            full_name=user.full_name,
            is_active=user.is_active,
            is_verified=user.is_verified,
            created_at=user.created_at,
            roles=roles,
            permissions=permissions,
            permissions_version=permissions_version,
        )
        await cache.set(
            user_snapshot_key(user_id), snapshot.model_dump_json(), USER_SNAPSHOT_TTL_SECONDS
        )
        return snapshot

    async def forget_snapshot(self, cache: Cache, user_id: uuid.UUID) -> None:
        await cache.delete(user_snapshot_key(user_id))

    async def invalidate_access(self, cache: Cache) -> None:
        """Make every cached snapshot stale: call after committing any change to who may
        do what (roles, grants, activation).

        Moving one global version, rather than deleting the affected users' entries, needs
        no list of who holds a role, and cannot race with a request that is rebuilding a
        snapshot from rows read before the change. Such changes are rare; the price is one
        rebuild per active user.
        """
        await cache.set(PERMISSIONS_VERSION_KEY, uuid.uuid4().hex)

    async def get_active(self, db: AsyncSession, user_id: uuid.UUID) -> User:
        """The user an access token names, if it still exists and is active."""
        user = await db.get(User, user_id)
        if user is None or not user.is_active:
            raise UnauthorizedException("User is inactive or no longer exists")
        return user

    @staticmethod
    async def _start_permissions_version(cache: Cache) -> str:
        # The cache was emptied or evicted the key: start a version unless another
        # instance just did, then use whichever one is current.
        await cache.add(PERMISSIONS_VERSION_KEY, uuid.uuid4().hex)
        return await cache.get(PERMISSIONS_VERSION_KEY) or ""

    @staticmethod
    async def _resolve_access(
        db: AsyncSession, user_id: uuid.UUID
    ) -> tuple[tuple[str, ...], frozenset[str]]:
        """The user's role names and permission names, in one query."""
        rows = await db.execute(
            select(Role.name, Feature.name, Action.name)
            .select_from(user_roles)
            .join(Role, Role.id == user_roles.c.role_id)
            .outerjoin(role_permissions, role_permissions.c.role_id == Role.id)
            .outerjoin(Permission, Permission.id == role_permissions.c.permission_id)
            .outerjoin(Feature, Feature.id == Permission.feature_id)
            .outerjoin(Action, Action.id == Permission.action_id)
            .where(user_roles.c.user_id == user_id)
        )
        roles: set[str] = set()
        permissions: set[str] = set()
        for role, feature, action in rows:
            roles.add(role)
            if feature is not None and action is not None:
                permissions.add(f"{feature}:{action}")
        return tuple(sorted(roles)), frozenset(permissions)


user_service = UserService()
