"""Your own account (any authenticated user) and user administration (by permission)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from app.routes.deps import AppResources, CurrentPrincipal, DbSession
from app.routes.permissions import require_permission
from app.routes.responses import json_response
from app.schemas.listing import Page
from app.schemas.user import (
    CurrentUserResponse,
    UserAdminResponse,
    UserListQuery,
    UserResponse,
    UserUpdate,
)
from app.services.user_service import user_service

router = APIRouter()

READ_USERS = [Depends(require_permission("users:read"))]
ADMINISTER_USERS = [Depends(require_permission("users:admin"))]


@router.get("/me", response_model=CurrentUserResponse)
async def read_me(principal: CurrentPrincipal) -> Response:
    """Your profile, roles and permissions (served from the auth cache, no query)."""
    # Serialized once per cached snapshot; a Response is sent as is, not validated again.
    return Response(principal.user.profile_json, media_type="application/json")


@router.patch("/me", response_model=UserResponse)
async def update_me(
    data: UserUpdate, principal: CurrentPrincipal, db: DbSession, resources: AppResources
) -> UserResponse:
    """Change your own profile (only the fields sent are changed)."""
    user = await user_service.update_profile(db, resources.cache, principal.user_id, data)
    return UserResponse.model_validate(user)


@router.get("", response_model=Page[UserAdminResponse], dependencies=READ_USERS)
async def list_users(query: Annotated[UserListQuery, Query()], db: DbSession) -> Response:
    """Users with their roles, newest first unless `sort` says otherwise."""
    return json_response(await user_service.list_with_roles(db, query))


@router.get("/{user_id}", response_model=UserAdminResponse, dependencies=READ_USERS)
async def read_user(user_id: uuid.UUID, db: DbSession) -> UserAdminResponse:
    user = await user_service.get_with_roles(db, user_id)
    return UserAdminResponse.model_validate(user)


@router.put(
    "/{user_id}/roles/{role_id}", response_model=UserAdminResponse, dependencies=ADMINISTER_USERS
)
async def add_role(
    user_id: uuid.UUID, role_id: uuid.UUID, db: DbSession, resources: AppResources
) -> UserAdminResponse:
    """Give the user a role (holding it already is fine); effective on their next request."""
    user = await user_service.add_role(db, resources.cache, user_id, role_id)
    return UserAdminResponse.model_validate(user)


@router.delete(
    "/{user_id}/roles/{role_id}", response_model=UserAdminResponse, dependencies=ADMINISTER_USERS
)
async def remove_role(
    user_id: uuid.UUID, role_id: uuid.UUID, db: DbSession, resources: AppResources
) -> UserAdminResponse:
    """Take a role from the user; effective on their next request."""
    user = await user_service.remove_role(db, resources.cache, user_id, role_id)
    return UserAdminResponse.model_validate(user)


@router.post("/{user_id}/activate", response_model=UserAdminResponse, dependencies=ADMINISTER_USERS)
async def activate_user(
    user_id: uuid.UUID, db: DbSession, resources: AppResources
) -> UserAdminResponse:
    user = await user_service.set_active(db, resources.cache, user_id, active=True)
    return UserAdminResponse.model_validate(user)


@router.post(
    "/{user_id}/deactivate", response_model=UserAdminResponse, dependencies=ADMINISTER_USERS
)
async def deactivate_user(
    user_id: uuid.UUID, db: DbSession, resources: AppResources
) -> UserAdminResponse:
    """Lock the user out: their tokens stop working on their next request."""
    user = await user_service.set_active(db, resources.cache, user_id, active=False)
    return UserAdminResponse.model_validate(user)
