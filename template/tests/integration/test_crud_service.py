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
        await article_service.create_for(db, ArticleCreate(title=f"Article {n}"), author.id)
        for n in range(count)
    ]


async def test_list_returns_the_total_and_respects_limit_and_offset(
    db_session: AsyncSession, author: User
) -> None:
    created = await _create_articles(db_session, author, 5)

    first, total = await article_service.list(db_session, limit=2, offset=0)
    second, _ = await article_service.list(db_session, limit=2, offset=2)
    last, last_total = await article_service.list(db_session, limit=2, offset=4)
    beyond, _ = await article_service.list(db_session, limit=2, offset=5)

    assert total == last_total == 5
    assert [len(first), len(second), len(last), len(beyond)] == [2, 2, 1, 0]
    listed = [article.id for article in first + second + last]
    assert sorted(listed) == sorted(article.id for article in created)
    created_ats = [article.created_at for article in first + second + last]
    assert created_ats == sorted(created_ats, reverse=True)  # newest first


async def test_list_applies_where_to_items_and_total(
    db_session: AsyncSession, author: User
) -> None:
    created = await _create_articles(db_session, author, 3)

    items, total = await article_service.list(
        db_session, limit=10, offset=0, where=[Article.id == created[0].id]
    )

    assert total == 1
    assert [article.id for article in items] == [created[0].id]


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
    article = await article_service.create_for(
        db_session, ArticleCreate(title="Title", content="Body"), author.id
    )

    await article_service.update(db_session, article, ArticleUpdate(content="New body"))

    assert (article.title, article.content) == ("Title", "New body")


async def test_delete_removes_the_row(db_session: AsyncSession, author: User) -> None:
    (article,) = await _create_articles(db_session, author, 1)

    await article_service.delete(db_session, article)

    _, total = await article_service.list(db_session, limit=10, offset=0)
    assert total == 0
