"""What jobs work with: the database, the email provider, the storage and the settings."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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

    @property
    def outbox(self) -> OutboxService:
        return OutboxService(self.settings)

    @property
    def sender(self) -> Sender:
        return Sender(email=self.settings.email_from, name=self.settings.email_from_name)
