from fastapi import APIRouter, status

from app.routes.deps import AppResources, DbSession, Mailer
from app.schemas.auth import LoginRequest, TokenResponse
from app.schemas.user import UserCreate, UserResponse
from app.services.user_service import user_service

router = APIRouter()


@router.post("/register", response_model=UserResponse, status_code=status.HTTP_201_CREATED)
async def register(
    data: UserCreate, db: DbSession, resources: AppResources, mailer: Mailer
) -> UserResponse:
    """Create an account and send a welcome email. The email must not be registered yet (409)."""
    user = await user_service.register(db, data, resources.password_hasher)
    mailer.send_welcome(user.email, user.full_name)
    return UserResponse.model_validate(user)


@router.post("/login", response_model=TokenResponse)
async def login(data: LoginRequest, db: DbSession, resources: AppResources) -> TokenResponse:
    """Exchange email and password for a short-lived access token."""
    user = await user_service.authenticate(db, data.email, data.password, resources.password_hasher)
    access = resources.tokens.issue(str(user.id))
    return TokenResponse(
        access_token=access.token,
        expires_in=resources.settings.access_token_expire_minutes * 60,
    )
