"""Access control: features, actions, permissions, roles, and who holds which role.

Also inserts the catalog and default roles of `app.core.rbac` (a data-only module made
to be read here), so a new database is usable at once. Later additions to that module
reach existing databases through `python -m app.cli seed`, not through this file.

Existing users get the default role `author`, which keeps what they could do before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from app.core.rbac import ACTIONS, DEFAULT_ROLES, FEATURE_ACTIONS, FEATURES

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXISTING_USERS_ROLE = "author"


def _base_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    features = op.create_table(
        "features",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        *_base_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_features")),
        sa.UniqueConstraint("name", name=op.f("uq_features_name")),
    )
    actions = op.create_table(
        "actions",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        *_base_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actions")),
        sa.UniqueConstraint("name", name=op.f("uq_actions_name")),
    )
    permissions = op.create_table(
        "permissions",
        sa.Column("feature_id", sa.Uuid(), nullable=False),
        sa.Column("action_id", sa.Uuid(), nullable=False),
        *_base_columns(),
        sa.ForeignKeyConstraint(
            ["action_id"],
            ["actions.id"],
            name=op.f("fk_permissions_action_id_actions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["feature_id"],
            ["features.id"],
            name=op.f("fk_permissions_feature_id_features"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permissions")),
        sa.UniqueConstraint("feature_id", "action_id", name=op.f("uq_permissions_feature_id")),
    )
    op.create_index(op.f("ix_permissions_action_id"), "permissions", ["action_id"], unique=False)
    roles = op.create_table(
        "roles",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("is_system", sa.Boolean(), nullable=False),
        *_base_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
        sa.UniqueConstraint("name", name=op.f("uq_roles_name")),
    )
    role_permissions = op.create_table(
        "role_permissions",
        sa.Column("role_id", sa.Uuid(), nullable=False),
        sa.Column("permission_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["permission_id"],
            ["permissions.id"],
            name=op.f("fk_role_permissions_permission_id_permissions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["role_id"],
            ["roles.id"],
            name=op.f("fk_role_permissions_role_id_roles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("role_id", "permission_id", name=op.f("pk_role_permissions")),
    )
    op.create_index(
        op.f("ix_role_permissions_permission_id"),
        "role_permissions",
        ["permission_id"],
        unique=False,
    )
    user_roles = op.create_table(
        "user_roles",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["role_id"], ["roles.id"], name=op.f("fk_user_roles_role_id_roles"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_roles_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "role_id", name=op.f("pk_user_roles")),
    )
    op.create_index(op.f("ix_user_roles_role_id"), "user_roles", ["role_id"], unique=False)

    _insert_defaults(features, actions, permissions, roles, role_permissions, user_roles)


def _insert_defaults(
    features: sa.Table,
    actions: sa.Table,
    permissions: sa.Table,
    roles: sa.Table,
    role_permissions: sa.Table,
    user_roles: sa.Table,
) -> None:
    now = datetime.now(UTC)
    stamp = {"created_at": now, "updated_at": now}
    feature_ids = {name: uuid.uuid4() for name in FEATURES}
    action_ids = {name: uuid.uuid4() for name in ACTIONS}
    permission_ids = {
        f"{feature}:{action}": uuid.uuid4()
        for feature, feature_actions in FEATURE_ACTIONS.items()
        for action in feature_actions
    }
    role_ids = {role.name: uuid.uuid4() for role in DEFAULT_ROLES}
    op.bulk_insert(
        features,
        [
            {"id": feature_ids[name], "name": name, "description": text, **stamp}
            for name, text in FEATURES.items()
        ],
    )
    op.bulk_insert(
        actions,
        [
            {"id": action_ids[name], "name": name, "description": text, **stamp}
            for name, text in ACTIONS.items()
        ],
    )
    op.bulk_insert(
        permissions,
        [
            {
                "id": permission_id,
                "feature_id": feature_ids[name.partition(":")[0]],
                "action_id": action_ids[name.partition(":")[2]],
                **stamp,
            }
            for name, permission_id in permission_ids.items()
        ],
    )
    op.bulk_insert(
        roles,
        [
            {
                "id": role_ids[role.name],
                "name": role.name,
                "description": role.description,
                "is_system": True,
                **stamp,
            }
            for role in DEFAULT_ROLES
        ],
    )
    op.bulk_insert(
        role_permissions,
        [
            {"role_id": role_ids[role.name], "permission_id": permission_ids[name]}
            for role in DEFAULT_ROLES
            for name in sorted(role.permissions)
        ],
    )
    existing_users = sa.table("users", sa.column("id", sa.Uuid()))
    op.execute(
        user_roles.insert().from_select(
            ["user_id", "role_id"],
            sa.select(
                existing_users.c.id,
                sa.literal(role_ids[EXISTING_USERS_ROLE], sa.Uuid()),
            ),
        )
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_user_roles_role_id"), table_name="user_roles")
    op.drop_table("user_roles")
    op.drop_index(op.f("ix_role_permissions_permission_id"), table_name="role_permissions")
    op.drop_table("role_permissions")
    op.drop_table("roles")
    op.drop_index(op.f("ix_permissions_action_id"), table_name="permissions")
    op.drop_table("permissions")
    op.drop_table("actions")
    op.drop_table("features")
