"""The seed adds what the catalog defines and the database lacks, and nothing else."""

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.rbac import DEFAULT_ROLES
from app.core.resources import Resources
from app.models import Action, Feature, Permission, Role
from app.services.rbac_seed import SeedReport, seed
from app.services.role_service import role_service
from app.services.user_service import PERMISSIONS_VERSION_KEY
from tests.helpers import administrator


async def _grants(db: AsyncSession) -> dict[str, set[str]]:
    roles = await role_service.list_roles(db)
    return {role.name: {permission.name for permission in role.permissions} for role in roles}


async def test_seeding_a_seeded_database_changes_nothing(
    db_session: AsyncSession, resources: Resources
) -> None:
    version = await resources.cache.get(PERMISSIONS_VERSION_KEY)

    report = await seed(db_session, resources.cache)

    assert report == SeedReport()
    assert await resources.cache.get(PERMISSIONS_VERSION_KEY) == version  # no needless rebuild
    assert await _grants(db_session) == {role.name: role.permissions for role in DEFAULT_ROLES}


async def test_a_new_permission_reaches_its_default_roles_but_revocations_stay(
    db_session: AsyncSession, resources: Resources
) -> None:
    # As if a release added `articles:publish` to the catalog, and an administrator had
    # revoked files:read from viewers.
    publish = (
        select(Permission.id)
        .join(Feature)
        .join(Action)
        .where(Feature.name == "articles", Action.name == "publish")
    )
    await db_session.execute(delete(Permission).where(Permission.id.in_(publish)))
    await db_session.commit()
    viewer_id = await _role_id(db_session, "viewer")
    await role_service.revoke(db_session, resources.cache, viewer_id, "files:read", administrator())
    version = await resources.cache.get(PERMISSIONS_VERSION_KEY)

    report = await seed(db_session, resources.cache)

    assert (report.permissions, report.grants, report.roles) == (1, 1, 0)
    grants = await _grants(db_session)
    assert "articles:publish" in grants["author"]
    viewer = next(role.permissions for role in DEFAULT_ROLES if role.name == "viewer")
    assert grants["viewer"] == viewer - {"files:read"}
    assert await resources.cache.get(PERMISSIONS_VERSION_KEY) != version


async def test_a_missing_default_role_is_created_as_a_system_role(
    db_session: AsyncSession, resources: Resources
) -> None:
    await db_session.execute(delete(Role).where(Role.name == "editor"))
    await db_session.commit()

    report = await seed(db_session, resources.cache)

    editor = await role_service.get_role(db_session, await _role_id(db_session, "editor"))
    editor_definition = next(role for role in DEFAULT_ROLES if role.name == "editor")
    assert (report.roles, report.grants) == (1, len(editor_definition.permissions))
    assert editor.is_system
    assert {permission.name for permission in editor.permissions} == next(
        role.permissions for role in DEFAULT_ROLES if role.name == "editor"
    )


async def _role_id(db: AsyncSession, name: str) -> uuid.UUID:
    found = await db.scalar(select(Role.id).where(Role.name == name))
    assert found is not None
    return found


async def test_the_seed_gives_the_admin_role_back_every_permission(
    db_session: AsyncSession, resources: Resources
) -> None:
    # However the admin role lost a permission (older releases let an administrator, or
    # a delegated one, revoke it; the API refuses now), the next seed (and so
    # `create-admin`) gives it back: the admin role always holds every permission.
    admin_role = await role_service.get_role(db_session, await _role_id(db_session, "admin"))
    admin_role.permissions = [
        permission
        for permission in admin_role.permissions
        if permission.name not in {"roles:admin", "users:admin"}
    ]
    await db_session.commit()

    report = await seed(db_session, resources.cache)

    assert report.grants == 2
    admin = next(role for role in DEFAULT_ROLES if role.name == "admin")
    assert (await _grants(db_session))["admin"] == admin.permissions
