import uuid
from dataclasses import dataclass
from datetime import datetime

from app.core.rate_limit import RateLimitStatus
from app.exceptions import UnauthorizedException
from app.schemas.user import UserSnapshot


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of an authenticated request: their user and the session their token belongs to."""

    user: UserSnapshot
    session_id: uuid.UUID
    jti: str
    token_expires_at: datetime
    # They wrote within the read-your-writes window, so their reads go to the primary
    # (known only where read replicas are configured: `app.core.replicas`).
    recent_writer: bool = False

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent an API request, as far as it shows: a principal, or nobody.

    `rejection` says why a presented token was refused (a route that needs a principal
    answers with it); `rate_limit` is the caller's standing after this request.
    """

    principal: Principal | None
    rejection: UnauthorizedException | None = None
    rate_limit: RateLimitStatus | None = None
