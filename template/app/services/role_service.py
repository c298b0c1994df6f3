"""Roles and their grants; the catalog of features, actions and permissions.

Every change commits first and then makes cached user snapshots stale
(`user_service.invalidate_access`), so the next request of every affected user runs
with the new permissions.
"""

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.core.cache import Cache
from app.core.rbac import PERMISSIONS
from app.exceptions import ConflictException, NotFoundException
from app.models import Action, Feature, Permission, Role
from app.schemas.rbac import RoleCreate, RoleUpdate
from app.services.crud_service import CRUDService
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

    async def create_role(self, db: AsyncSession, data: RoleCreate) -> Role:
        await self._ensure_name_free(db, data.name)
        permissions = await self._get_permissions(db, data.permissions)
        role = Role(name=data.name, description=data.description, permissions=permissions)
        db.add(role)
        await self.commit(db)
        return role

    async def update_role(
        self, db: AsyncSession, cache: Cache, role_id: uuid.UUID, data: RoleUpdate
    ) -> Role:
        role = await self.get_role(db, role_id)
        new_name = data.name if data.name != role.name else None
        if new_name is not None:
            if role.is_system:
                raise ConflictException(f"{role.name!r} is a system role: it cannot be renamed")
            await self._ensure_name_free(db, new_name)
        await self.update(db, role, data)
        if new_name is not None:  # snapshots carry role names
            await user_service.invalidate_access(cache)
        return role

    async def delete_role(self, db: AsyncSession, cache: Cache, role_id: uuid.UUID) -> None:
        role = await self.get_by_id(db, role_id)
        if role.is_system:
            raise ConflictException(f"{role.name!r} is a system role: it cannot be deleted")
        await db.delete(role)  # its grants and user assignments go with it (cascade)
        await user_service.ensure_administrators_remain(db)
        await self.commit(db)
        await user_service.invalidate_access(cache)

    async def grant(
        self, db: AsyncSession, cache: Cache, role_id: uuid.UUID, permission_name: str
    ) -> Role:
        role = await self.get_role(db, role_id)
        [permission] = await self._get_permissions(db, [permission_name])
        if permission not in role.permissions:
            role.permissions.append(permission)
            await self.commit(db)
            await user_service.invalidate_access(cache)
        return role

    async def revoke(
        self, db: AsyncSession, cache: Cache, role_id: uuid.UUID, permission_name: str
    ) -> Role:
        role = await self.get_role(db, role_id)
        [permission] = await self._get_permissions(db, [permission_name])
        if permission in role.permissions:
            role.permissions.remove(permission)
            await user_service.ensure_administrators_remain(db)
            await self.commit(db)
            await user_service.invalidate_access(cache)
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


role_service = RoleService()
