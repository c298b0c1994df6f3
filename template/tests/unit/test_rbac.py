"""The access-control catalog, the permission rule, and `require_permission`'s contract."""

import re
import uuid
from pathlib import Path

import pytest

from app.core import rbac
from app.core.rbac import (
    ADMIN_ACTION,
    ADMIN_ROLE,
    DEFAULT_ROLES,
    FEATURE_ACTIONS,
    FEATURES,
    MODERATE_ACTION,
    PERMISSIONS,
    split_permission,
)
from app.exceptions import ForbiddenException
from app.models import User
from app.models.base import utcnow
from app.routes.permissions import require_permission
from app.services.authorization import (
    OWNER_ACTIONS,
    ensure_can_grant,
    ensure_permission,
    has_permission,
    permissions_granting,
)
from app.services.principal import Principal
from tests.helpers import principal_for

README = Path(__file__).resolve().parents[2] / "README.md"
DEFAULTS = {role.name: role.permissions for role in DEFAULT_ROLES}


def _holding(*permissions: str) -> Principal:
    user = User(
        id=uuid.uuid4(),
        email="someone@example.com",
        is_active=True,
        is_verified=False,
        created_at=utcnow(),
    )
    return principal_for(user, *permissions)


def test_every_feature_has_actions_and_every_default_grant_exists() -> None:
    assert set(FEATURE_ACTIONS) == set(FEATURES)
    assert all(f"{feature}:admin" in PERMISSIONS for feature in FEATURES)
    for role in DEFAULT_ROLES:
        assert role.permissions <= PERMISSIONS, f"{role.name} grants unknown permissions"
    assert set(DEFAULTS) >= {"admin", "editor", "author", "viewer"}


def test_admin_role_holds_every_feature_admin() -> None:
    admin = _holding(*DEFAULTS[ADMIN_ROLE])

    assert all(has_permission(admin, permission) for permission in PERMISSIONS)


def test_no_default_role_but_admin_holds_a_feature_admin_permission() -> None:
    # Issue #17: `feature:admin` is every action on the feature, present and future; it
    # is the admin role's alone, whatever roles and features the catalog grows.
    holders = {
        role.name: sorted(name for name in role.permissions if name.endswith(f":{ADMIN_ACTION}"))
        for role in DEFAULT_ROLES
    }

    assert {name for name, held in holders.items() if held} == {ADMIN_ROLE}, holders


def test_moderate_is_offered_with_every_owner_action_and_implies_only_those() -> None:
    for feature, actions in FEATURE_ACTIONS.items():
        if MODERATE_ACTION not in actions:
            continue
        moderator = _holding(f"{feature}:{MODERATE_ACTION}")
        implied = {action for action in actions if has_permission(moderator, f"{feature}:{action}")}
        assert implied == (OWNER_ACTIONS & set(actions)) | {MODERATE_ACTION}, feature
        assert not has_permission(moderator, f"{feature}:{ADMIN_ACTION}")


@pytest.mark.parametrize(
    ("granted", "asked", "allowed"),
    [
        ({"articles:read"}, "articles:read", True),
        ({"articles:read"}, "articles:write", False),
        ({"articles:admin"}, "articles:publish", True),
        ({"articles:admin"}, "articles:delete", True),
        ({"articles:admin"}, "articles:moderate", True),
        ({"articles:admin"}, "users:read", False),
        ({"articles:moderate"}, "articles:write", True),
        ({"articles:moderate"}, "articles:admin", False),
        ({"articles:moderate"}, "files:read", False),
        ({"files:moderate"}, "files:delete", True),
        ({"articles:write"}, "articles:moderate", False),
        ({"users:admin"}, "articles:read", False),
        ({"files:write"}, "files:admin", False),
        (set(), "articles:read", False),
    ],
)
def test_admin_and_moderate_imply_actions_of_their_own_feature_only(
    granted: set[str], asked: str, allowed: bool
) -> None:
    assert has_permission(_holding(*granted), asked) is allowed


@pytest.mark.parametrize("permission", sorted(PERMISSIONS))
def test_every_permission_is_granted_by_names_of_its_own_feature_in_the_catalog(
    permission: str,
) -> None:
    granting = permissions_granting(permission)

    assert permission in granting
    assert granting <= PERMISSIONS
    assert {split_permission(name)[0] for name in granting} == {split_permission(permission)[0]}


def test_a_moderator_grants_what_moderate_implies_and_never_the_feature_admin() -> None:
    # Grants dominate: a granter holding `roles:admin` and `articles:moderate` may hand
    # out the article owner actions and `moderate` itself, nothing of `admin`.
    granter = _holding("roles:admin", "articles:moderate")
    implied = [f"articles:{action}" for action in sorted(OWNER_ACTIONS)]

    ensure_can_grant(granter, [*implied, "articles:moderate"], what="The role")
    with pytest.raises(ForbiddenException) as refused:
        ensure_can_grant(granter, ["articles:moderate", "articles:admin"], what="The role")
    assert refused.value.details == {"missing_permissions": ["articles:admin"]}


def test_ensure_permission_names_the_missing_permission() -> None:
    with pytest.raises(ForbiddenException, match="articles:publish"):
        ensure_permission(_holding("articles:read"), "articles:publish")


@pytest.mark.parametrize("name", ["articles:publsh", "articles", "reports:read", "roles:publish"])
def test_unknown_permission_names_are_refused_where_declared(name: str) -> None:
    with pytest.raises(ValueError, match="unknown permission"):
        split_permission(name)
    with pytest.raises(ValueError, match="unknown permission"):
        require_permission(name)
    with pytest.raises(ValueError, match="unknown permission"):
        has_permission(_holding("articles:admin"), name)


def test_the_decorator_refuses_a_sync_endpoint() -> None:
    def endpoint() -> None: ...

    with pytest.raises(TypeError, match="async"):
        require_permission("articles:read")(endpoint)  # type: ignore[type-var]


def _documented_roles(lines: list[str]) -> dict[str, frozenset[str]]:
    return {
        name: frozenset(re.findall(r"[a-z]+:[a-z]+", permissions))
        for name, permissions in (line.split(":", 1) for line in lines)
    }


def test_the_module_docstring_documents_the_default_roles() -> None:
    # An entry may wrap onto indented continuation lines.
    unwrapped = re.sub(r"\n  +", " ", rbac.__doc__ or "")
    lines = re.findall(r"^- (\w+: .*)$", unwrapped, re.MULTILINE)

    assert _documented_roles(lines) == DEFAULTS


def test_the_readme_documents_the_default_roles() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (.*) \|$", README.read_text(), re.MULTILINE)

    assert _documented_roles([f"{name}: {permissions}" for name, permissions in rows]) == DEFAULTS
