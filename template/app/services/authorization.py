"""Permission checks: set lookups on the caller's resolved permissions, never a query.

This is the one place that knows what a permission implies (`permissions_granting`):
`feature:admin` implies every action on that feature, and `feature:moderate` implies
the owner's actions (`OWNER_ACTIONS`) on anyone's resources of the feature. Services
call `has_permission` for rules that depend on the resource (an `articles:moderate`
holder may change anyone's article); routes declare the permission an endpoint needs
with `app.routes.permissions.require_permission`.
"""

from collections.abc import Iterable

from app.core.rbac import ADMIN_ACTION, FEATURE_ACTIONS, MODERATE_ACTION, split_permission
from app.exceptions import ForbiddenException, GrantRefusedException
from app.services.principal import Principal

OWNER_ACTIONS = frozenset({"read", "write", "delete", "publish"})
"""What an owner does to its own resources; `feature:moderate` does it to everyone's."""


def permissions_granting(permission: str) -> frozenset[str]:
    """The permissions whose holder holds `permission`: itself, `feature:admin`, and
    `feature:moderate` for an owner's action (ValueError outside the catalog).

    Each permission implies a fixed set, whatever else its holder holds: abilities only
    add up, so `ensure_can_grant` (the granter holds each permission it hands out)
    bounds what a grant confers by what the granter can do.
    """
    feature, action = split_permission(permission)
    granting = {permission, f"{feature}:{ADMIN_ACTION}"}
    if action in OWNER_ACTIONS and MODERATE_ACTION in FEATURE_ACTIONS[feature]:
        granting.add(f"{feature}:{MODERATE_ACTION}")
    return frozenset(granting)


def has_permission(principal: Principal, permission: str) -> bool:
    """Whether the caller holds `permission` (ValueError if it is not in the catalog)."""
    granted = principal.user.permissions
    return not granted.isdisjoint(permissions_granting(permission))


def ensure_permission(principal: Principal, permission: str) -> None:
    if not has_permission(principal, permission):
        raise ForbiddenException(f"This needs the {permission} permission")


def ensure_can_grant(principal: Principal, permissions: Iterable[str], *, what: str) -> None:
    """Refuse (403) to hand out, or take away, `what` when it carries permissions the caller
    does not hold: no one grants beyond their own permissions, so a delegated
    administrator (`users:admin` or `roles:admin` alone) cannot raise anyone, themselves
    included, above their own level, and a `feature:moderate` holder can hand out the
    feature's owner actions and `moderate`, never `feature:admin`. OWASP API5:2023,
    ASVS 5.0 V8.2.
    """
    if missing := sorted({name for name in permissions if not has_permission(principal, name)}):
        raise GrantRefusedException(
            f"{what} carries permissions you do not hold: {', '.join(missing)}",
            missing_permissions=missing,
        )
