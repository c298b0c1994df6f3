import uuid
from dataclasses import dataclass
from datetime import datetime

from app.schemas.user import UserSnapshot


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of an authenticated request: their user and the session their token belongs to."""

    user: UserSnapshot
    session_id: uuid.UUID
    jti: str
    token_expires_at: datetime

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id
