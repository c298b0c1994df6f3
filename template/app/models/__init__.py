"""ORM models. Importing this package registers every table on `Base.metadata`."""

from app.models.article import Article, ArticleStatus
from app.models.auth_session import AuthSession
from app.models.base import Base, BaseModel
from app.models.file import File
from app.models.outbox import OutboxMessage, OutboxStatus
from app.models.rbac import Action, Feature, Permission, Role, role_permissions, user_roles
from app.models.user import User

__all__ = [
    "Action",
    "Article",
    "ArticleStatus",
    "AuthSession",
    "Base",
    "BaseModel",
    "Feature",
    "File",
    "OutboxMessage",
    "OutboxStatus",
    "Permission",
    "Role",
    "User",
    "role_permissions",
    "user_roles",
]
