from fastapi import APIRouter

from app.routes.deps import AppResources, CurrentPrincipal, DbSession
from app.schemas.user import UserResponse, UserUpdate
from app.services.user_service import user_service

router = APIRouter()


@router.get("/me", response_model=UserResponse)
async def read_me(principal: CurrentPrincipal) -> UserResponse:
    """The authenticated user's profile (served from the auth cache, no query)."""
    return UserResponse.model_validate(principal.user, from_attributes=True)


@router.patch("/me", response_model=UserResponse)
async def update_me(
    data: UserUpdate, principal: CurrentPrincipal, db: DbSession, resources: AppResources
) -> UserResponse:
    """Change your own profile (only the fields sent are changed)."""
    user = await user_service.update_profile(db, resources.cache, principal.user_id, data)
    return UserResponse.model_validate(user)
