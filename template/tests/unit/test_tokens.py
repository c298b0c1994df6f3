import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from pydantic import SecretStr

from app.core.config import Settings
from app.core.security import JWT_ALGORITHM, TokenCodec
from app.exceptions import UnauthorizedException
from tests.helpers import build_settings


@pytest.fixture
def settings() -> Settings:
    # 64+ bytes, so PyJWT accepts the key for HS512 too (see the algorithm-pinning test).
    secret = SecretStr(secrets.token_urlsafe(64))
    return build_settings(database_url="sqlite+aiosqlite://").model_copy(
        update={"secret_key": secret}
    )


@pytest.fixture
def codec(settings: Settings) -> TokenCodec:
    return TokenCodec(settings)


SESSION_ID = str(uuid.uuid4())


def _key(settings: Settings) -> str:
    return settings.secret_key.get_secret_value()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": "user-1",
        "sid": SESSION_ID,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def test_issued_token_decodes_to_its_claims(codec: TokenCodec, settings: Settings) -> None:
    access = codec.issue("user-42", SESSION_ID)

    claims = codec.decode(access.token)

    assert claims.subject == "user-42"
    assert claims.session_id == SESSION_ID
    assert claims.jti == access.jti
    assert claims.expires_at == access.expires_at.replace(microsecond=0)
    lifetime = claims.expires_at - claims.issued_at
    assert lifetime == timedelta(minutes=settings.access_token_expire_minutes)


def test_each_token_has_a_unique_jti(codec: TokenCodec) -> None:
    assert codec.issue("user-1", SESSION_ID).jti != codec.issue("user-1", SESSION_ID).jti


def test_expired_token_is_rejected(codec: TokenCodec, settings: Settings) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    token = jwt.encode(
        _claims(iat=past, exp=past + timedelta(minutes=5)),
        _key(settings),
        JWT_ALGORITHM,
    )

    with pytest.raises(UnauthorizedException, match="expired"):
        codec.decode(token)


def test_token_signed_with_another_key_is_rejected(codec: TokenCodec) -> None:
    token = jwt.encode(_claims(), secrets.token_urlsafe(32), algorithm=JWT_ALGORITHM)

    with pytest.raises(UnauthorizedException, match="Invalid access token"):
        codec.decode(token)


def test_unsigned_alg_none_token_is_rejected(codec: TokenCodec) -> None:
    token = jwt.encode(_claims(), "", algorithm="none")
    assert token.endswith(".")  # really unsigned

    with pytest.raises(UnauthorizedException, match="Invalid access token"):
        codec.decode(token)


def test_token_with_another_algorithm_and_same_key_is_rejected(
    codec: TokenCodec, settings: Settings
) -> None:
    token = jwt.encode(_claims(), _key(settings), algorithm="HS512")

    with pytest.raises(UnauthorizedException, match="Invalid access token"):
        codec.decode(token)


@pytest.mark.parametrize("missing", ["sub", "sid", "jti", "iat", "exp"])
def test_token_missing_a_required_claim_is_rejected(
    codec: TokenCodec, settings: Settings, missing: str
) -> None:
    token = jwt.encode(_claims(**{missing: None}), _key(settings), algorithm=JWT_ALGORITHM)

    with pytest.raises(UnauthorizedException):
        codec.decode(token)


def test_garbage_token_is_rejected(codec: TokenCodec) -> None:
    with pytest.raises(UnauthorizedException, match="Invalid access token"):
        codec.decode("not.a.jwt")


def test_audience_is_checked_when_configured(settings: Settings) -> None:
    issuing = TokenCodec(settings.model_copy(update={"jwt_audience": "service-a"}))
    checking = TokenCodec(settings.model_copy(update={"jwt_audience": "service-b"}))
    token = issuing.issue("user-1", SESSION_ID).token

    assert issuing.decode(token).subject == "user-1"
    with pytest.raises(UnauthorizedException):
        checking.decode(token)


def test_expired_token_decodes_only_when_expiry_is_waived(
    codec: TokenCodec, settings: Settings
) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    token = jwt.encode(
        _claims(iat=past, exp=past + timedelta(minutes=5)), _key(settings), algorithm="HS256"
    )

    with pytest.raises(UnauthorizedException, match="expired"):
        codec.decode(token)
    assert codec.decode(token, allow_expired=True).session_id == SESSION_ID


def test_waiving_expiry_still_checks_the_signature(codec: TokenCodec) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    forged = jwt.encode(_claims(iat=past, exp=past), "another-key-of-sufficient-length!", "HS256")

    with pytest.raises(UnauthorizedException, match="Invalid access token"):
        codec.decode(forged, allow_expired=True)


def test_a_cached_token_still_expires(codec: TokenCodec, monkeypatch: pytest.MonkeyPatch) -> None:
    access = codec.issue("user-1", SESSION_ID)
    assert codec.decode(access.token).subject == "user-1"  # now cached

    later = access.expires_at.timestamp() + 3600
    monkeypatch.setattr(time, "time", lambda: later)

    with pytest.raises(UnauthorizedException, match="expired"):
        codec.decode(access.token)


def test_a_tampered_copy_of_a_cached_token_is_still_rejected(codec: TokenCodec) -> None:
    access = codec.issue("user-1", SESSION_ID)
    codec.decode(access.token)
    header, payload, signature = access.token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"

    with pytest.raises(UnauthorizedException, match="Invalid access token"):
        codec.decode(tampered)
