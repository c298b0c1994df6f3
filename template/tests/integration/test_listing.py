"""The shared list machinery (`app.services.listing`), through the article listing."""

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.cache import Cache
from app.core.resources import Resources
from app.models import Article, User
from app.schemas.article import ArticleCreate, ArticleListQuery
from app.services.article_service import ARTICLE_LISTING, article_service
from app.services.listing import Listing
from tests.helpers import create_user


@pytest.fixture
async def author(db_session: AsyncSession, resources: Resources) -> User:
    return await create_user(db_session, resources.password_hasher)


async def _create_articles(
    db: AsyncSession, cache: Cache, author: User, count: int
) -> list[Article]:
    return [
        await article_service.create_for(db, cache, ArticleCreate(title=f"Article {n}"), author.id)
        for n in range(count)
    ]


async def test_offset_pages_carry_the_total(
    db_session: AsyncSession, resources: Resources, author: User
) -> None:
    created = await _create_articles(db_session, resources.cache, author, 5)

    pages = [
        await ARTICLE_LISTING.page(db_session, ArticleListQuery(limit=2, offset=offset))
        for offset in (0, 2, 4, 5)
    ]

    assert [page["total"] for page in pages] == [5, 5, 5, 5]  # past the end too
    assert [len(page["items"]) for page in pages] == [2, 2, 1, 0]
    listed = [item["id"] for page in pages for item in page["items"]]
    assert listed == [str(article.id) for article in reversed(created)]  # newest first
    assert [page["next_cursor"] is None for page in pages] == [False, False, True, True]


async def test_where_applies_to_items_and_total(
    db_session: AsyncSession, resources: Resources, author: User
) -> None:
    created = await _create_articles(db_session, resources.cache, author, 3)

    page = await ARTICLE_LISTING.page(
        db_session, ArticleListQuery(), where=[Article.id == created[0].id]
    )

    assert page["total"] == 1
    assert [item["id"] for item in page["items"]] == [str(created[0].id)]


def test_a_listing_must_map_every_field_and_filter() -> None:
    with pytest.raises(TypeError, match="must map exactly"):
        Listing(
            query=ArticleListQuery,
            id_column=Article.id,
            columns={"id": Article.id},
            sorts={"created_at": Article.created_at},
        )
    with pytest.raises(TypeError, match="filters must map exactly"):
        Listing(
            query=ArticleListQuery,
            id_column=Article.id,
            columns=ARTICLE_LISTING.columns,
            joins=ARTICLE_LISTING.joins,
            sorts=ARTICLE_LISTING.sorts,
        )
