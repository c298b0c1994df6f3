import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.resources import Resources
from app.models import Article, User
from app.schemas.article import ArticleCreate, ArticleUpdate
from app.services.article_service import article_service
from tests.helpers import create_user


@pytest.fixture
async def author(db_session: AsyncSession, resources: Resources) -> User:
    return await create_user(db_session, resources.password_hasher)


async def _create_articles(db: AsyncSession, author: User, count: int) -> list[Article]:
    return [
        await article_service.create(db, ArticleCreate(title=f"Article {n}"), author_id=author.id)
        for n in range(count)
    ]


async def test_timestamps_are_aware_and_updated_at_moves_on_update(
    db_session: AsyncSession, resources: Resources, author: User
) -> None:
    (article,) = await _create_articles(db_session, author, 1)
    created_at, updated_at = article.created_at, article.updated_at
    assert created_at.utcoffset() is not None
    assert updated_at.utcoffset() is not None

    await article_service.update(db_session, article, ArticleUpdate(title="Renamed"))

    async with resources.session_factory() as fresh:
        stored = await article_service.get_by_id(fresh, article.id)
    assert stored.title == "Renamed"
    assert stored.created_at == created_at
    assert stored.updated_at > updated_at
    assert stored.created_at.utcoffset() is not None
    assert stored.updated_at.utcoffset() is not None


async def test_update_changes_only_the_fields_sent(db_session: AsyncSession, author: User) -> None:
    article = await article_service.create(
        db_session, ArticleCreate(title="Title", content="Body"), author_id=author.id
    )

    await article_service.update(db_session, article, ArticleUpdate(content="New body"))

    assert (article.title, article.content) == ("Title", "New body")


async def test_delete_removes_the_row(db_session: AsyncSession, author: User) -> None:
    (article,) = await _create_articles(db_session, author, 1)

    await article_service.delete(db_session, article)

    assert await db_session.get(Article, article.id) is None
