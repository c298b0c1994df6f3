"""Roles and their grants; the catalog of features, actions and permissions.

Changing a role changes every holder of the role, so the caller must hold every
permission the role carries, as well as any it grants or revokes (`_ensure_dominates`):
a delegated `roles:admin` holder cannot strip the administrators' role, nor edit any
role above its own level. OWASP API5:2023, ASVS 5.0 V8.2.

Every change makes cached user snapshots stale before and after it commits
(`user_service.commit_access_change`), so the next request of every affected user runs
with the new permissions, even when Redis fails right after the commit.
"""

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.core.cache import Cache
from app.core.rbac import ADMIN_ROLE, PERMISSIONS
from app.exceptions import ConflictException, NotFoundException
from app.models import Action, Feature, Permission, Role
from app.schemas.rbac import RoleCreate, RoleUpdate
from app.services.authorization import ensure_can_grant
from app.services.crud_service import CRUDService
from app.services.principal import Principal
from app.services.user_service import user_service

WITH_PERMISSIONS = (selectinload(Role.permissions),)


class RoleService(CRUDService[Role, RoleCreate, RoleUpdate]):
    def __init__(self) -> None:
        super().__init__(Role, resource_name="Role")

    # The catalog (read-only: it is defined in app.core.rbac) ------------------

    async def list_features(self, db: AsyncSession) -> list[Feature]:
        return list(await db.scalars(select(Feature).order_by(Feature.name)))

    async def list_actions(self, db: AsyncSession) -> list[Action]:
        return list(await db.scalars(select(Action).order_by(Action.name)))

    async def list_permissions(self, db: AsyncSession) -> list[Permission]:
        rows = await db.scalars(select(Permission))
        return sorted(rows, key=lambda permission: permission.name)

    # Roles --------------------------------------------------------------------

    async def list_roles(self, db: AsyncSession) -> list[Role]:
        return list(await db.scalars(select(Role).order_by(Role.name).options(*WITH_PERMISSIONS)))

    async def get_role(self, db: AsyncSession, role_id: uuid.UUID) -> Role:
        return await self.get_by_id(db, role_id, options=WITH_PERMISSIONS)

    async def create_role(self, db: AsyncSession, data: RoleCreate, granter: Principal) -> Role:
        await self._ensure_name_free(db, data.name)
        permissions = await self._get_permissions(db, data.permissions)
        ensure_can_grant(granter, data.permissions, what="The role")
        role = Role(name=data.name, description=data.description, permissions=permissions)
        db.add(role)
        await self.commit(db)
        return role

    async def update_role(
        self,
        db: AsyncSession,
        cache: Cache,
        role_id: uuid.UUID,
        data: RoleUpdate,
        granter: Principal,
    ) -> Role:
        role = await self.get_role(db, role_id)
        _ensure_dominates(granter, role, what=f"Role {role.name!r}")
        new_name = data.name if data.name != role.name else None
        if new_name is not None:
            if role.is_system:
                raise ConflictException(f"{role.name!r} is a system role: it cannot be renamed")
            await self._ensure_name_free(db, new_name)
        for field, value in data.model_dump(exclude_unset=True).items():
            setattr(role, field, value)
        if new_name is not None:  # snapshots carry role names
            await user_service.commit_access_change(db, cache)
        else:
            await self.commit(db)
        return role

    async def delete_role(
        self, db: AsyncSession, cache: Cache, role_id: uuid.UUID, granter: Principal
    ) -> None:
        role = await self.get_role(db, role_id)
        _ensure_dominates(granter, role, what=f"Role {role.name!r}")
        if role.is_system:
            raise ConflictException(f"{role.name!r} is a system role: it cannot be deleted")
        await db.delete(role)  # its grants and user assignments go with it (cascade)
        await user_service.ensure_administrators_remain(db)
        await user_service.commit_access_change(db, cache)

    async def grant(
        self,
        db: AsyncSession,
        cache: Cache,
        role_id: uuid.UUID,
        permission_name: str,
        granter: Principal,
    ) -> Role:
        role = await self.get_role(db, role_id)
        [permission] = await self._get_permissions(db, [permission_name])
        _ensure_dominates(granter, role, permission_name, what=f"Role {role.name!r}")
        if permission not in role.permissions:
            role.permissions.append(permission)
            await user_service.commit_access_change(db, cache)
        return role

    async def revoke(
        self,
        db: AsyncSession,
        cache: Cache,
        role_id: uuid.UUID,
        permission_name: str,
        granter: Principal,
    ) -> Role:
        role = await self.get_role(db, role_id)
        [permission] = await self._get_permissions(db, [permission_name])
        _ensure_dominates(granter, role, permission_name, what=f"Role {role.name!r}")
        if role.name == ADMIN_ROLE:
            # Its holders would lose the permission, and with it the right to grant it
            # back (no grant beyond one's own): nobody could restore it but the seed.
            raise ConflictException(
                f"The {ADMIN_ROLE!r} role holds every permission: {permission_name} "
                "cannot be revoked from it"
            )
        if permission in role.permissions:
            role.permissions.remove(permission)
            await user_service.ensure_administrators_remain(db)
            await user_service.commit_access_change(db, cache)
        return role

    # Internals ----------------------------------------------------------------

    async def _ensure_name_free(self, db: AsyncSession, name: str) -> None:
        # The unique index still turns a concurrent duplicate into a 409 at commit.
        if await db.scalar(select(Role.id).where(Role.name == name)) is not None:
            raise ConflictException(f"A role named {name!r} already exists")

    async def _get_permissions(self, db: AsyncSession, names: Sequence[str]) -> list[Permission]:
        unknown = [name for name in names if name not in PERMISSIONS]
        if unknown:
            raise NotFoundException(f"Unknown permission {unknown[0]!r}")
        # The whole catalog is a few dozen rows: one query, then look the names up.
        by_name = {
            permission.name: permission for permission in await db.scalars(select(Permission))
        }
        if missing := [name for name in names if name not in by_name]:
            raise NotFoundException(
                f"Permission {missing[0]!r} is not seeded yet: run `python -m app.cli seed`"
            )
        return [by_name[name] for name in names]


def _ensure_dominates(granter: Principal, role: Role, *changed: str, what: str) -> None:
    """403 unless `granter` holds every permission of `role` and every one in `changed`."""
    ensure_can_grant(granter, [*(p.name for p in role.permissions), *changed], what=what)


role_service = RoleService()
