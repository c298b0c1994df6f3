"""Bring the database's catalog and default roles up to `app.core.rbac`; safe to run on
every deploy (`python -m app.cli seed`).

It only adds: missing features, actions and permissions; missing default roles, with
their default grants; a permission that is new to the database is granted to the
default roles the catalog gives it to; and the `admin` role gets back any of its
catalog grants it lost, so it always holds every permission (`create-admin` after
`seed` always makes a full administrator). It never removes anything, and re-grants
nothing to the other roles, so the grants an administrator changed there survive a
deploy. Run it once per release (for
example in the release step), not from every instance at once.
"""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.core.cache import Cache
from app.core.rbac import ACTIONS, ADMIN_ROLE, DEFAULT_ROLES, FEATURE_ACTIONS, FEATURES
from app.models import Action, Feature, Permission, Role
from app.services.user_service import user_service


@dataclass(frozen=True, slots=True)
class SeedReport:
    features: int = 0
    actions: int = 0
    permissions: int = 0
    roles: int = 0
    grants: int = 0

    @property
    def changed(self) -> bool:
        return any((self.features, self.actions, self.permissions, self.roles, self.grants))


async def seed(db: AsyncSession, cache: Cache) -> SeedReport:
    """Add what the catalog defines and the database lacks; report what was added."""
    features = {row.name: row for row in await db.scalars(select(Feature))}
    new_features = [
        Feature(name=name, description=text)
        for name, text in FEATURES.items()
        if name not in features
    ]
    actions = {row.name: row for row in await db.scalars(select(Action))}
    new_actions = [
        Action(name=name, description=text) for name, text in ACTIONS.items() if name not in actions
    ]
    db.add_all([*new_features, *new_actions])
    features.update((feature.name, feature) for feature in new_features)
    actions.update((action.name, action) for action in new_actions)

    permissions = {row.name: row for row in await db.scalars(select(Permission))}
    new_permissions = {
        f"{feature}:{action}": Permission(feature=features[feature], action=actions[action])
        for feature, feature_actions in FEATURE_ACTIONS.items()
        for action in feature_actions
        if f"{feature}:{action}" not in permissions
    }
    db.add_all(new_permissions.values())
    permissions.update(new_permissions)

    roles = {
        role.name: role
        for role in await db.scalars(
            select(Role)
            .where(Role.name.in_([default.name for default in DEFAULT_ROLES]))
            .options(selectinload(Role.permissions))
        )
    }
    new_roles = grants = 0
    for default in DEFAULT_ROLES:
        role = roles.get(default.name)
        if role is None:
            role = Role(name=default.name, description=default.description, is_system=True)
            db.add(role)
            new_roles += 1
            to_grant = default.permissions
        elif default.name == ADMIN_ROLE:
            to_grant = default.permissions - {permission.name for permission in role.permissions}
        else:
            to_grant = default.permissions & new_permissions.keys()
        role.permissions.extend(permissions[name] for name in sorted(to_grant))
        grants += len(to_grant)

    report = SeedReport(
        features=len(new_features),
        actions=len(new_actions),
        permissions=len(new_permissions),
        roles=new_roles,
        grants=grants,
    )
    if report.changed:
        await user_service.commit_access_change(db, cache)
    return report
