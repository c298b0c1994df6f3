"""Editors moderate articles instead of administering them: no default role but `admin`
holds a `feature:admin` permission (issue #17).

Adds the action `moderate` and the permissions `articles:moderate` and `files:moderate`
(`feature:moderate` implies read, write, delete and publish on anyone's resources of the
feature, see `app.services.authorization`), and moves the `editor` role from
`articles:admin` to `articles:moderate`: editors still see every draft and change,
publish and delete any article, but no longer hold the feature's wildcard, nor can
hand it out. Only that grant moves: an editor role an administrator had taken
`articles:admin` from gets nothing, and every other grant an administrator chose stays.
Rows that already exist (0004 inserts the catalog as `app.core.rbac` holds it when it
runs, so a new database has them) are left as they are.

The downgrade gives `articles:admin` back to an `editor` role holding
`articles:moderate`, then deletes the `moderate` action and its permissions: any other
role granted one of them loses it (0005 knows no `moderate`; nothing is widened).

The catalog is written out here rather than imported: a migration must not change
meaning when the app's code does.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MODERATE = "moderate"
MODERATE_DESCRIPTION = "Read, write, delete and publish (as the feature offers) anyone's resources"
MODERATED_FEATURES = ("articles", "files")
EDITOR = "editor"
EDITOR_FEATURE = "articles"

features = sa.table("features", sa.column("id", sa.Uuid()), sa.column("name", sa.String()))
actions = sa.table(
    "actions",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("description", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
permissions = sa.table(
    "permissions",
    sa.column("id", sa.Uuid()),
    sa.column("feature_id", sa.Uuid()),
    sa.column("action_id", sa.Uuid()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
roles = sa.table("roles", sa.column("id", sa.Uuid()), sa.column("name", sa.String()))
role_permissions = sa.table(
    "role_permissions", sa.column("role_id", sa.Uuid()), sa.column("permission_id", sa.Uuid())
)


def _permission(feature: str, action: str) -> sa.ScalarSelect[Any]:
    return (
        sa.select(permissions.c.id)
        .join(features, features.c.id == permissions.c.feature_id)
        .join(actions, actions.c.id == permissions.c.action_id)
        .where(features.c.name == feature, actions.c.name == action)
        .scalar_subquery()
    )


def _move_editor(from_action: str, to_action: str) -> None:
    """Replace the editor role's `articles:<from_action>` grant by `articles:<to_action>`,
    if it holds the first and the second exists."""
    editor = sa.select(roles.c.id).where(roles.c.name == EDITOR).scalar_subquery()
    old, new = _permission(EDITOR_FEATURE, from_action), _permission(EDITOR_FEATURE, to_action)

    def held(permission: sa.ScalarSelect[Any]) -> sa.Exists:
        return sa.exists().where(
            role_permissions.c.role_id == editor, role_permissions.c.permission_id == permission
        )

    op.execute(
        role_permissions.insert().from_select(
            ["role_id", "permission_id"],
            sa.select(editor, new).where(new.is_not(None), held(old), ~held(new)),
        )
    )
    op.execute(
        role_permissions.delete().where(
            role_permissions.c.role_id == editor,
            role_permissions.c.permission_id == old,
            held(new),
        )
    )


def upgrade() -> None:
    # Statements only, no reads in Python: `alembic upgrade --sql` writes them out too.
    now = sa.literal(datetime.now(UTC), sa.DateTime(timezone=True))
    op.execute(
        actions.insert().from_select(
            ["id", "name", "description", "created_at", "updated_at"],
            sa.select(
                sa.literal(uuid.uuid4(), sa.Uuid()),
                sa.literal(MODERATE),
                sa.literal(MODERATE_DESCRIPTION),
                now,
                now,
            ).where(~sa.exists().where(actions.c.name == MODERATE)),
        )
    )
    moderate = sa.select(actions.c.id).where(actions.c.name == MODERATE).scalar_subquery()
    for feature in MODERATED_FEATURES:
        feature_id = sa.select(features.c.id).where(features.c.name == feature).scalar_subquery()
        exists = sa.exists().where(
            permissions.c.feature_id == feature_id, permissions.c.action_id == moderate
        )
        op.execute(
            permissions.insert().from_select(
                ["id", "feature_id", "action_id", "created_at", "updated_at"],
                sa.select(
                    sa.literal(uuid.uuid4(), sa.Uuid()), feature_id, moderate, now, now
                ).where(feature_id.is_not(None), ~exists),
            )
        )
    _move_editor("admin", MODERATE)


def downgrade() -> None:
    _move_editor(MODERATE, "admin")
    moderate = sa.select(actions.c.id).where(actions.c.name == MODERATE).scalar_subquery()
    moderate_permissions = sa.select(permissions.c.id).where(permissions.c.action_id == moderate)
    op.execute(
        role_permissions.delete().where(role_permissions.c.permission_id.in_(moderate_permissions))
    )
    op.execute(permissions.delete().where(permissions.c.action_id == moderate))
    op.execute(actions.delete().where(actions.c.name == MODERATE))
