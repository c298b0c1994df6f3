import uuid
from collections.abc import Collection
from functools import lru_cache
from typing import Any

import structlog
from sqlalchemy import and_, delete, distinct, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.core.cache import Cache, hash_tag
from app.core.rbac import split_permission
from app.core.security import PasswordHasher
from app.exceptions import ConflictException, NotFoundException, UnauthorizedException
from app.models import (
    Action,
    AuthSession,
    Feature,
    File,
    Permission,
    Role,
    User,
    role_permissions,
    user_roles,
)
from app.models.base import utcnow
from app.models.outbox import OutboxMessage
from app.schemas.user import UserCreate, UserListQuery, UserSnapshot, UserUpdate
from app.services import one_time_tokens
from app.services.article_service import forget_cached_articles
from app.services.authorization import ensure_can_grant
from app.services.crud_service import CRUDService
from app.services.listing import Listing, RelatedList
from app.services.principal import Principal
from app.storage.base import ObjectsNotDeletedError, Storage

logger = structlog.stdlib.get_logger(__name__)

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
    # Tagged with the user: on a Redis Cluster, in the hash slot of their request counters.
    return f"auth:user:{hash_tag(str(user_id))}"


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
        granter: Principal | None = None,
        user_id: uuid.UUID | None = None,
    ) -> User:
        """Create the account with `roles` (with `user_id`, when the caller needs the id
        before the commit) and commit, with whatever else the session holds. With
        `granter` (an administrator creating it), 403 unless the granter holds every
        permission the roles grant, as for assigning a role (no grant beyond the
        granter's own permissions); 409 for a taken email."""
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
        if granter is not None:
            for role in found:
                grants = await self._role_grants(db, role.id)
                ensure_can_grant(granter, grants, what=f"Role {role.name!r}")
        user = User(
            id=user_id or uuid.uuid4(),
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
        """The user these credentials belong to; the same error (and cost) for every failure.

        The user row is read, the connection handed back during bcrypt, and the row then
        read again under a row lock (`lock_unchanged`): a password change, reset,
        "log out everywhere" or deactivation that committed meanwhile fails the login
        (401). On success the row stays locked until the caller commits, so the session
        it opens in that transaction is seen (and ended) by any such change that follows.
        """
        user = await self.get_by_email(db, email)
        # Hand the connection back before hashing: a queue of logins waiting for bcrypt
        # must not hold the pool that every other request needs.
        await db.commit()
        if user is None:
            await hasher.verify_dummy(password)
            raise UnauthorizedException("Incorrect email or password")
        matches, rehashed = await hasher.verify_and_update(password, user.hashed_password)
        if not matches or not user.is_active:
            raise UnauthorizedException("Incorrect email or password")
        await self.lock_unchanged(db, user)
        if rehashed is not None:  # made at another cost or from unnormalised text: renew it
            user.hashed_password = rehashed
            await db.flush()
        return user

    async def lock_unchanged(self, db: AsyncSession, user: User) -> None:
        """Lock the user's row (`SELECT ... FOR UPDATE`, held until the caller commits) and
        refuse (401, rolled back) if it changed since `user` was read: another hash, no
        longer active, or any other write (`updated_at` moved: a deactivation undone,
        "log out everywhere"). Every way sessions end writes the row first, so either it
        committed before and the login fails here, or it waits for the login's commit
        and then sees the new session. OWASP ASVS 5.0 V7.4.
        """
        current = (
            await db.execute(
                select(User.hashed_password, User.is_active, User.updated_at)
                .where(User.id == user.id)
                .with_for_update()
            )
        ).one_or_none()
        if current is None or tuple(current) != (user.hashed_password, True, user.updated_at):
            await db.rollback()
            raise UnauthorizedException("Incorrect email or password")

    async def touch_credentials(self, db: AsyncSession, user_id: uuid.UUID) -> None:
        """Write the user row (its `updated_at`), taking its row lock until the caller
        commits: a login in flight that read the row before fails (`lock_unchanged`),
        one that locked it first commits its session before this goes on."""
        await db.execute(
            update(User)
            .where(User.id == user_id)
            .values(updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    async def update_profile(
        self, db: AsyncSession, cache: Cache, user_id: uuid.UUID, data: UserUpdate
    ) -> User:
        user = await self.get_active(db, user_id)
        for field, value in data.model_dump(exclude_unset=True).items():
            setattr(user, field, value)
        await self.commit_profile_change(db, cache, user_id)
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
        self,
        db: AsyncSession,
        cache: Cache,
        user_id: uuid.UUID,
        *,
        active: bool,
        actor: Principal,
    ) -> User:
        user = await self.get_with_roles(db, user_id)
        await self.ensure_outranks(db, actor, user.id)
        user.is_active = active
        if not active:
            await self.ensure_administrators_remain(db)
        await self.commit_access_change(db, cache)
        return user

    async def add_role(
        self,
        db: AsyncSession,
        cache: Cache,
        user_id: uuid.UUID,
        role_id: uuid.UUID,
        granter: Principal,
    ) -> User:
        user = await self.get_with_roles(db, user_id)
        role = await db.get(Role, role_id)
        if role is None:
            raise NotFoundException("Role not found")
        ensure_can_grant(granter, await self._role_grants(db, role_id), what=f"Role {role.name!r}")
        if role not in user.roles:
            user.roles.append(role)
            await self.commit_access_change(db, cache)
        return user

    async def remove_role(
        self,
        db: AsyncSession,
        cache: Cache,
        user_id: uuid.UUID,
        role_id: uuid.UUID,
        granter: Principal,
    ) -> User:
        user = await self.get_with_roles(db, user_id)
        held = [role for role in user.roles if role.id == role_id]
        if not held:
            raise NotFoundException("The user does not hold this role")
        # What you could not give, you cannot take away either.
        grants = await self._role_grants(db, role_id)
        ensure_can_grant(granter, grants, what=f"Role {held[0].name!r}")
        user.roles.remove(held[0])
        await self.ensure_administrators_remain(db)
        await self.commit_access_change(db, cache)
        return user

    async def erase(
        self, db: AsyncSession, cache: Cache, storage: Storage, user_id: uuid.UUID
    ) -> list[uuid.UUID]:
        """Delete the account and everything personal to it: profile, role assignments,
        sessions, articles, uploaded files (rows and stored objects) and mail to it.
        Refused (409) for the last active holder of an access-administering permission.
        Returns the ids of the sessions it had, for the caller to mark ended (their
        tokens die at once); its reset and verification links die here. GDPR art. 17;
        OWASP ASVS 5.0 V14.2.
        """
        user = await self.get_with_roles(db, user_id)
        keys = list(await db.scalars(select(File.key).where(File.owner_id == user_id)))
        sessions = list(
            await db.scalars(select(AuthSession.id).where(AuthSession.user_id == user_id))
        )
        await db.delete(user)  # rows that name the user go with it (ON DELETE CASCADE)
        # So does mail to the address, sent or waiting (its links die below anyway).
        to_the_user = OutboxMessage.to_email == user.email
        await db.execute(delete(OutboxMessage).where(to_the_user))
        await self.ensure_administrators_remain(db)
        await self.forget_snapshot(cache, user_id)
        await self.invalidate_access(cache)
        await self.commit(db)
        # All at once (S3: one request per 1000 files), so a storage that stopped
        # answering holds the request for one call's timeout, within the budget, however
        # many files there were. The rows are gone: leftovers are logged to remove by hand.
        try:
            await storage.delete_many(keys)
        except ObjectsNotDeletedError as error:
            logger.error("erased_files_not_deleted", keys=error.keys, reason=str(error))
        await self.forget_snapshot(cache, user_id)
        await self.invalidate_access(cache)
        await forget_cached_articles(cache)
        await one_time_tokens.revoke_all(cache, user_id)
        return sessions

    async def ensure_outranks(self, db: AsyncSession, actor: Principal, user_id: uuid.UUID) -> None:
        """Refuse (403) to act on a user holding permissions the actor does not hold."""
        if user_id == actor.user_id:
            return
        _, permissions = await self._resolve_access(db, user_id)
        ensure_can_grant(actor, permissions, what="This user's access")

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
    async def _role_grants(db: AsyncSession, role_id: uuid.UUID) -> list[str]:
        """The names of the permissions a role grants."""
        rows = await db.execute(
            select(Feature.name, Action.name)
            .select_from(role_permissions)
            .join(Permission, Permission.id == role_permissions.c.permission_id)
            .join(Feature, Feature.id == Permission.feature_id)
            .join(Action, Action.id == Permission.action_id)
            .where(role_permissions.c.role_id == role_id)
        )
        return [f"{feature}:{action}" for feature, action in rows.all()]

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

    async def commit_access_change(self, db: AsyncSession, cache: Cache) -> None:
        """Commit a change to who may do what, moving the permissions version before the
        commit as well as after it.

        Moved before: if Redis fails after the commit (the client gets a 503), every
        snapshot cached before the change is already stale. Moved after: a snapshot
        rebuilt from the old rows while the commit was under way is made stale too. Redis
        failing before the commit fails the request with nothing changed.
        """
        await self.invalidate_access(cache)
        await self.commit(db)
        await self.invalidate_access(cache)

    async def commit_profile_change(
        self, db: AsyncSession, cache: Cache, user_id: uuid.UUID
    ) -> None:
        """Commit a change to the user's own row, dropping their cached snapshot before
        the commit as well as after it (the reasons of `commit_access_change`)."""
        await self.forget_snapshot(cache, user_id)
        await self.commit(db)
        await self.forget_snapshot(cache, user_id)

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
