from fastapi import APIRouter

from app.routes.deps import CurrentUser, DbSession
from app.schemas.user import UserResponse, UserUpdate
from app.services.user_service import user_service

router = APIRouter()


@router.get("/me", response_model=UserResponse)
async def read_me(current_user: CurrentUser) -> UserResponse:
    """The authenticated user's profile."""
    return UserResponse.model_validate(current_user)


@router.patch("/me", response_model=UserResponse)
async def update_me(data: UserUpdate, current_user: CurrentUser, db: DbSession) -> UserResponse:
    """Change your own profile (only the fields sent are changed)."""
    user = await user_service.update(db, current_user, data)
    return UserResponse.model_validate(user)
