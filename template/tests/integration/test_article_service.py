import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.resources import Resources
from app.exceptions import ForbiddenException, NotFoundException, ValidationException
from app.models import Article, ArticleStatus, User
from app.schemas.article import ArticleCreate, ArticleUpdate
from app.services.article_service import article_service
from tests.helpers import create_user


@pytest.fixture
async def author(db_session: AsyncSession, resources: Resources) -> User:
    return await create_user(db_session, resources.password_hasher, full_name="Author")


@pytest.fixture
async def stranger(db_session: AsyncSession, resources: Resources) -> User:
    return await create_user(db_session, resources.password_hasher, full_name="Stranger")


async def _draft(db: AsyncSession, author: User, content: str | None = "Body") -> Article:
    return await article_service.create_for(
        db, ArticleCreate(title="Title", content=content), author.id
    )


async def test_new_article_is_a_draft_of_its_author(db_session: AsyncSession, author: User) -> None:
    article = await _draft(db_session, author)

    assert article.status is ArticleStatus.DRAFT
    assert article.published_at is None
    assert article.author_id == author.id


async def test_publish_sets_status_and_an_aware_published_at(
    db_session: AsyncSession, resources: Resources, author: User
) -> None:
    article = await _draft(db_session, author)

    published = await article_service.publish(db_session, article.id, author.id)

    assert published.status is ArticleStatus.PUBLISHED
    assert published.published_at is not None
    assert published.published_at.utcoffset() is not None
    async with resources.session_factory() as fresh:
        stored = await article_service.get_by_id(fresh, article.id)
    assert stored.status is ArticleStatus.PUBLISHED
    assert stored.published_at == published.published_at
    assert stored.published_at is not None
    assert stored.published_at.utcoffset() is not None


@pytest.mark.parametrize("content", [None, "", "   \n"])
async def test_publish_requires_content(
    db_session: AsyncSession, author: User, content: str | None
) -> None:
    article = await _draft(db_session, author, content=content)

    with pytest.raises(ValidationException, match="content"):
        await article_service.publish(db_session, article.id, author.id)


async def test_publishing_twice_is_refused(db_session: AsyncSession, author: User) -> None:
    article = await _draft(db_session, author)
    await article_service.publish(db_session, article.id, author.id)

    with pytest.raises(ValidationException, match="already published"):
        await article_service.publish(db_session, article.id, author.id)


async def test_only_the_author_can_publish_update_or_delete(
    db_session: AsyncSession, author: User, stranger: User
) -> None:
    article = await _draft(db_session, author)
    await article_service.publish(db_session, article.id, author.id)

    with pytest.raises(ForbiddenException):
        await article_service.publish(db_session, article.id, stranger.id)
    with pytest.raises(ForbiddenException):
        await article_service.update_own(
            db_session, article.id, ArticleUpdate(title="X"), stranger.id
        )
    with pytest.raises(ForbiddenException):
        await article_service.delete_own(db_session, article.id, stranger.id)


async def test_someone_elses_draft_is_not_found(
    db_session: AsyncSession, author: User, stranger: User
) -> None:
    article = await _draft(db_session, author)

    with pytest.raises(NotFoundException):
        await article_service.get_visible(db_session, article.id, stranger.id)
    with pytest.raises(NotFoundException):
        await article_service.publish(db_session, article.id, stranger.id)
    assert (await article_service.get_visible(db_session, article.id, author.id)).id == article.id


async def test_list_visible_shows_published_articles_and_own_drafts(
    db_session: AsyncSession, author: User, stranger: User
) -> None:
    own_draft = await _draft(db_session, author)
    hidden_draft = await _draft(db_session, stranger)
    published = await _draft(db_session, stranger)
    await article_service.publish(db_session, published.id, stranger.id)

    articles, total = await article_service.list_visible(db_session, author.id, limit=10, offset=0)

    assert {article.id for article in articles} == {own_draft.id, published.id}
    assert hidden_draft.id not in {article.id for article in articles}
    assert total == 2
