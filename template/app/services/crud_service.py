"""Generic CRUD operations shared by the resource services (lists: `app.services.listing`).

Services own the transaction: a method that changes data commits before it
returns, so a route never commits and one business operation is one unit of
work. Database integrity errors are translated here, once, into a 409.
"""

import uuid
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel as Schema
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.interfaces import ORMOption

from app.exceptions import ConflictException, NotFoundException
from app.models.base import BaseModel

ModelT = TypeVar("ModelT", bound=BaseModel)
CreateT = TypeVar("CreateT", bound=Schema)
UpdateT = TypeVar("UpdateT", bound=Schema)


class CRUDService(Generic[ModelT, CreateT, UpdateT]):
    def __init__(self, model: type[ModelT], *, resource_name: str | None = None) -> None:
        self.model = model
        self.resource_name = resource_name or model.__name__

    async def get_by_id(
        self, db: AsyncSession, id_: uuid.UUID, *, options: Sequence[ORMOption] = ()
    ) -> ModelT:
        instance = await db.get(self.model, id_, options=options)
        if instance is None:
            raise NotFoundException(f"{self.resource_name} not found")
        return instance

    async def create(self, db: AsyncSession, data: CreateT, **extra: Any) -> ModelT:
        instance = self.model(**data.model_dump(), **extra)
        db.add(instance)
        await self.commit(db)
        return instance

    async def update(self, db: AsyncSession, instance: ModelT, data: UpdateT) -> ModelT:
        """Apply only the fields the client sent (a partial update)."""
        for field, value in data.model_dump(exclude_unset=True).items():
            setattr(instance, field, value)
        await self.commit(db)
        return instance

    async def delete(self, db: AsyncSession, instance: ModelT) -> None:
        await db.delete(instance)
        await self.commit(db)

    async def commit(self, db: AsyncSession) -> None:
        try:
            await db.commit()
        except IntegrityError as error:
            await db.rollback()
            raise ConflictException(f"{self.resource_name} conflicts with existing data") from error
