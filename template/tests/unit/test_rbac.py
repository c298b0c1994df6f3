"""The access-control catalog, the permission rule, and `require_permission`'s contract."""

import re
import uuid
from pathlib import Path

import pytest

from app.core import rbac
from app.core.rbac import DEFAULT_ROLES, FEATURE_ACTIONS, FEATURES, PERMISSIONS, split_permission
from app.exceptions import ForbiddenException
from app.models import User
from app.models.base import utcnow
from app.routes.permissions import require_permission
from app.services.authorization import ensure_permission, has_permission
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
    admin = _holding(*DEFAULTS["admin"])

    assert all(has_permission(admin, permission) for permission in PERMISSIONS)


@pytest.mark.parametrize(
    ("granted", "asked", "allowed"),
    [
        ({"articles:read"}, "articles:read", True),
        ({"articles:read"}, "articles:write", False),
        ({"articles:admin"}, "articles:publish", True),
        ({"articles:admin"}, "articles:delete", True),
        ({"articles:admin"}, "users:read", False),
        ({"users:admin"}, "articles:read", False),
        ({"files:write"}, "files:admin", False),
        (set(), "articles:read", False),
    ],
)
def test_feature_admin_implies_every_action_of_that_feature_only(
    granted: set[str], asked: str, allowed: bool
) -> None:
    assert has_permission(_holding(*granted), asked) is allowed


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
