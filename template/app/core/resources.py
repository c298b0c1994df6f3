"""Process-wide resources, opened by the app's lifespan and closed when it ends."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.cache import Cache, create_cache
from app.core.config import Settings
from app.core.database import create_engine, create_session_factory
from app.core.rate_limit import RateLimiter, create_rate_limiter
from app.core.replicas import ReplicaSet
from app.core.security import PasswordHasher, TokenCodec


@dataclass(frozen=True, slots=True)
class Resources:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    # Read-only sessions, on a read replica or the primary (`app.core.replicas`).
    replicas: ReplicaSet
    cache: Cache
    rate_limiter: RateLimiter
    password_hasher: PasswordHasher
    tokens: TokenCodec


@asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    engine = create_engine(settings)
    cache = create_cache(settings)
    replicas = ReplicaSet(settings, engine, cache)
    password_hasher = PasswordHasher(
        rounds=settings.bcrypt_rounds,
        max_concurrency=settings.password_hash_concurrency,
        max_waiting=settings.password_hash_queue_size,
        max_wait_seconds=settings.password_hash_max_wait_seconds,
    )
    try:
        await replicas.start()
        yield Resources(
            settings=settings,
            engine=engine,
            session_factory=create_session_factory(engine),
            replicas=replicas,
            cache=cache,
            rate_limiter=create_rate_limiter(settings),
            password_hasher=password_hasher,
            tokens=TokenCodec(settings),
        )
    finally:
        password_hasher.close()
        await replicas.close()
        await cache.close()
        await engine.dispose()
