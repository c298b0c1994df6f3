"""The access-control catalog: every feature, action, permission and default role, as data.

This is the one definition the rest follows: migration 0004 inserts it into a new
database, `python -m app.cli seed` adds whatever a deploy brings that the database
lacks, `require_permission` refuses permission names that are not listed here, and
the tests and README are checked against it. It imports nothing from the app, so the
migration can read it.

A permission is a feature and an action, written `feature:action`. What one permission
implies is decided in one place, `app.services.authorization.permissions_granting`:

- `feature:admin` implies every other action on that feature, now and as actions are
  added. It is reserved for the `admin` role: no other default role holds one.
- `feature:moderate` implies the actions an owner performs on its own resources
  (`read`, `write`, `delete`, `publish`, as far as the feature offers them) and lets
  them reach every owner's resources: an `articles:moderate` holder sees every draft and
  may change, delete or publish any article. Like "edit any" against "edit own"
  content in Drupal, or WordPress's `edit_others_posts`; only features whose resources
  have an owner offer it.
- Any other permission implies only itself, on the holder's own resources where the
  feature's resources have an owner.

Each permission stands for a fixed set of abilities, whatever else the holder holds, so
a granter who holds every permission it grants never hands out more than it has itself.

Default roles (system roles: they cannot be renamed or deleted):

- admin: articles:admin, files:admin, roles:admin, users:admin (everything)
- editor: articles:moderate, files:delete, files:read, files:write, users:read
- author: articles:delete, articles:publish, articles:read, articles:write, files:delete,
  files:read, files:write
- viewer: articles:read, files:read

Authors' article permissions apply to their own articles only; editors'
`articles:moderate` covers everyone's. New users get the role named by the
`DEFAULT_ROLE` setting (`author` by default).
"""

from dataclasses import dataclass

ADMIN_ACTION = "admin"
MODERATE_ACTION = "moderate"
ADMIN_ROLE = "admin"
"""The default role that holds every permission: the only one with `feature:admin` ones."""

FEATURES: dict[str, str] = {
    "articles": "Articles and their publication",
    "files": "Uploaded files",
    "roles": "Roles and the permissions they grant",
    "users": "User accounts",
}

ACTIONS: dict[str, str] = {
    "read": "See the feature's resources",
    "write": "Create and change resources",
    "delete": "Delete resources",
    "publish": "Make a resource public",
    MODERATE_ACTION: "Read, write, delete and publish (as the feature offers) anyone's resources",
    ADMIN_ACTION: "Every action on the feature, on anyone's resources (the admin role's)",
}

# Which actions each feature offers: not every pair makes sense (nothing publishes a role).
FEATURE_ACTIONS: dict[str, tuple[str, ...]] = {
    "articles": ("read", "write", "delete", "publish", MODERATE_ACTION, ADMIN_ACTION),
    "files": ("read", "write", "delete", MODERATE_ACTION, ADMIN_ACTION),
    "roles": ("read", ADMIN_ACTION),
    "users": ("read", ADMIN_ACTION),
}

PERMISSIONS: frozenset[str] = frozenset(
    f"{feature}:{action}" for feature, actions in FEATURE_ACTIONS.items() for action in actions
)


@dataclass(frozen=True, slots=True)
class RoleDefinition:
    name: str
    description: str
    permissions: frozenset[str]


DEFAULT_ROLES: tuple[RoleDefinition, ...] = (
    RoleDefinition(
        ADMIN_ROLE,
        "Administrators: everything",
        frozenset(f"{feature}:{ADMIN_ACTION}" for feature in FEATURES),
    ),
    RoleDefinition(
        "editor",
        "Editors: every article, drafts included",
        frozenset({"articles:moderate", "files:read", "files:write", "files:delete", "users:read"}),
    ),
    RoleDefinition(
        "author",
        "Authors: write and publish their own articles",
        frozenset(
            {
                "articles:read",
                "articles:write",
                "articles:delete",
                "articles:publish",
                "files:read",
                "files:write",
                "files:delete",
            }
        ),
    ),
    RoleDefinition(
        "viewer", "Viewers: read published articles", frozenset({"articles:read", "files:read"})
    ),
)


def split_permission(permission: str) -> tuple[str, str]:
    """The feature and action of a catalog permission; ValueError for any other name."""
    if permission not in PERMISSIONS:
        raise ValueError(
            f"unknown permission {permission!r}; known: {', '.join(sorted(PERMISSIONS))}"
        )
    feature, _, action = permission.partition(":")
    return feature, action
