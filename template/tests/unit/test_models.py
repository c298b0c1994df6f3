from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError
from sqlalchemy.dialects import sqlite

from app.models import Base
from app.models.base import UTCDateTime
from app.schemas.article import ArticleUpdate
from app.services.user_service import normalize_email

DIALECT = sqlite.dialect()


def test_constraints_follow_the_naming_convention() -> None:
    users = Base.metadata.tables["users"]
    articles = Base.metadata.tables["articles"]

    assert users.primary_key.name == "pk_users"
    assert {index.name for index in users.indexes} == {"ix_users_email", "ix_users_created_at_id"}
    assert {fk.name for fk in articles.foreign_key_constraints} == {"fk_articles_author_id_users"}
    assert "ix_articles_status_created_at" in {index.name for index in articles.indexes}


def test_utc_datetime_stores_aware_values_in_utc() -> None:
    paris = timezone(timedelta(hours=2))
    stored = UTCDateTime().process_bind_param(datetime(2024, 5, 1, 14, tzinfo=paris), DIALECT)

    assert stored == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert stored is not None
    assert stored.tzinfo is UTC


def test_utc_datetime_refuses_naive_values() -> None:
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2024, 5, 1, 12), DIALECT)


def test_utc_datetime_reads_naive_values_as_utc() -> None:
    loaded = UTCDateTime().process_result_value(datetime(2024, 5, 1, 12), DIALECT)

    assert loaded == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_normalize_email_trims_and_lowercases() -> None:
    assert normalize_email("  Alice@Example.COM ") == "alice@example.com"


def test_article_update_refuses_null_title_but_allows_omitting_it() -> None:
    assert ArticleUpdate.model_validate({"content": "x"}).model_fields_set == {"content"}
    with pytest.raises(ValidationError, match="title cannot be null"):
        ArticleUpdate.model_validate({"title": None})
