"""What jobs work with: the database, the email provider, the storage, the cache (the
one-time tokens) and the settings."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.cache import Cache
from app.core.config import Settings
from app.email.base import EmailProvider
from app.services.outbox_service import OutboxService, Sender
from app.storage.base import Storage


@dataclass(frozen=True, slots=True)
class JobContext:
    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    email_provider: EmailProvider
    storage: Storage
    cache: Cache  # the one-time tokens: a message whose link no longer works is not sent

    @property
    def outbox(self) -> OutboxService:
        return OutboxService(self.settings)

    @property
    def sender(self) -> Sender:
        return Sender(email=self.settings.email_from, name=self.settings.email_from_name)
