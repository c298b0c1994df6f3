"""Permission checks: set lookups on the caller's resolved permissions, never a query.

This is the one place that knows what `feature:admin` means: it implies every other
action on that feature. Services call `has_permission` for rules that depend on the
resource (an `articles:admin` holder may change anyone's article); routes declare
the permission an endpoint needs with `app.routes.permissions.require_permission`.
"""

from app.core.rbac import ADMIN_ACTION, split_permission
from app.exceptions import ForbiddenException
from app.services.principal import Principal


def has_permission(principal: Principal, permission: str) -> bool:
    """Whether the caller holds `permission` (ValueError if it is not in the catalog)."""
    feature, _ = split_permission(permission)
    granted = principal.user.permissions
    return permission in granted or f"{feature}:{ADMIN_ACTION}" in granted


def ensure_permission(principal: Principal, permission: str) -> None:
    if not has_permission(principal, permission):
        raise ForbiddenException(f"This needs the {permission} permission")
