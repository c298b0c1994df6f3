import json

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.cache import Cache
from app.core.resources import Resources
from app.exceptions import ForbiddenException, NotFoundException, ValidationException
from app.models import Article, ArticleStatus, User
from app.schemas.article import ArticleCreate, ArticleListQuery, ArticleUpdate
from app.services.article_service import article_service
from app.services.principal import Principal
from tests.helpers import create_user, principal_for

AUTHOR_PERMISSIONS = ("articles:read", "articles:write", "articles:delete", "articles:publish")


@pytest.fixture
def cache(resources: Resources) -> Cache:
    return resources.cache


@pytest.fixture
async def author_user(db_session: AsyncSession, resources: Resources) -> User:
    return await create_user(db_session, resources.password_hasher, full_name="Author")


@pytest.fixture
def author(author_user: User) -> Principal:
    return principal_for(author_user, *AUTHOR_PERMISSIONS)


@pytest.fixture
async def stranger(db_session: AsyncSession, resources: Resources) -> Principal:
    user = await create_user(db_session, resources.password_hasher, full_name="Stranger")
    return principal_for(user, *AUTHOR_PERMISSIONS)


@pytest.fixture
async def editor(db_session: AsyncSession, resources: Resources) -> Principal:
    user = await create_user(db_session, resources.password_hasher, full_name="Editor")
    return principal_for(user, "articles:moderate")


async def _draft(
    db: AsyncSession, cache: Cache, author: Principal, content: str | None = "Body"
) -> Article:
    return await article_service.create_for(
        db, cache, ArticleCreate(title="Title", content=content), author.user_id
    )


async def test_new_article_is_a_draft_of_its_author(
    db_session: AsyncSession, cache: Cache, author: Principal
) -> None:
    article = await _draft(db_session, cache, author)

    assert article.status is ArticleStatus.DRAFT
    assert article.published_at is None
    assert article.author_id == author.user_id


async def test_publish_sets_status_and_an_aware_published_at(
    db_session: AsyncSession, cache: Cache, resources: Resources, author: Principal
) -> None:
    article = await _draft(db_session, cache, author)

    published = await article_service.publish(db_session, cache, article.id, author)

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
    db_session: AsyncSession, cache: Cache, author: Principal, content: str | None
) -> None:
    article = await _draft(db_session, cache, author, content=content)

    with pytest.raises(ValidationException, match="content"):
        await article_service.publish(db_session, cache, article.id, author)


async def test_publishing_twice_is_refused(
    db_session: AsyncSession, cache: Cache, author: Principal
) -> None:
    article = await _draft(db_session, cache, author)
    await article_service.publish(db_session, cache, article.id, author)

    with pytest.raises(ValidationException, match="already published"):
        await article_service.publish(db_session, cache, article.id, author)


async def test_only_the_author_can_publish_update_or_delete(
    db_session: AsyncSession, cache: Cache, author: Principal, stranger: Principal
) -> None:
    article = await _draft(db_session, cache, author)
    await article_service.publish(db_session, cache, article.id, author)

    with pytest.raises(ForbiddenException):
        await article_service.publish(db_session, cache, article.id, stranger)
    with pytest.raises(ForbiddenException):
        await article_service.edit(
            db_session, cache, article.id, ArticleUpdate(title="X"), stranger
        )
    with pytest.raises(ForbiddenException):
        await article_service.remove(db_session, cache, article.id, stranger)


async def test_someone_elses_draft_is_not_found(
    db_session: AsyncSession, cache: Cache, author: Principal, stranger: Principal
) -> None:
    article = await _draft(db_session, cache, author)

    with pytest.raises(NotFoundException):
        await article_service.get_visible(db_session, article.id, stranger)
    with pytest.raises(NotFoundException):
        await article_service.publish(db_session, cache, article.id, stranger)
    with pytest.raises(NotFoundException):
        await article_service.edit(
            db_session, cache, article.id, ArticleUpdate(title="X"), stranger
        )
    with pytest.raises(NotFoundException):
        await article_service.remove(db_session, cache, article.id, stranger)
    assert (await article_service.get_visible(db_session, article.id, author)).id == article.id


async def test_list_visible_shows_published_articles_and_own_drafts(
    db_session: AsyncSession, cache: Cache, author: Principal, stranger: Principal
) -> None:
    own_draft = await _draft(db_session, cache, author)
    hidden_draft = await _draft(db_session, cache, stranger)
    published = await _draft(db_session, cache, stranger)
    await article_service.publish(db_session, cache, published.id, stranger)

    page = json.loads(
        await article_service.list_visible(db_session, cache, author, ArticleListQuery())
    )

    assert {item["id"] for item in page["items"]} == {str(own_draft.id), str(published.id)}
    assert str(hidden_draft.id) not in {item["id"] for item in page["items"]}
    assert page["total"] == 2


async def test_articles_moderate_sees_every_draft_and_may_change_any_article(
    db_session: AsyncSession, cache: Cache, author: Principal, editor: Principal
) -> None:
    draft = await _draft(db_session, cache, author)
    other = await _draft(db_session, cache, author)

    page = json.loads(
        await article_service.list_visible(db_session, cache, editor, ArticleListQuery())
    )
    assert {item["id"] for item in page["items"]} == {str(draft.id), str(other.id)}
    assert page["total"] == 2
    assert (await article_service.get_visible(db_session, draft.id, editor)).id == draft.id
    edited = await article_service.edit(
        db_session, cache, draft.id, ArticleUpdate(title="Ed"), editor
    )
    assert edited.title == "Ed"
    assert edited.author_id == author.user_id
    published = await article_service.publish(db_session, cache, draft.id, editor)
    assert published.status is ArticleStatus.PUBLISHED
    await article_service.remove(db_session, cache, other.id, editor)
    with pytest.raises(NotFoundException):
        await article_service.get_visible(db_session, other.id, author)
