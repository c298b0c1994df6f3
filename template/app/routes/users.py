"""Your own account (any authenticated user) and user administration (by permission)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from app.exceptions import (
    ConflictException,
    GrantRefusedException,
    IncorrectPasswordException,
    InvalidCursorException,
    NotFoundException,
    OwnAccountException,
    PasswordRefusedException,
    ServerBusyException,
)
from app.routes.api_route import ApiRoute
from app.routes.deps import (
    AppResources,
    Auth,
    Client,
    CurrentPrincipal,
    DbSession,
    ReadDbSession,
    StorageDep,
)
from app.routes.openapi import errors
from app.routes.permissions import require_permission
from app.routes.responses import json_response
from app.schemas.listing import Page
from app.schemas.user import (
    AccountDeletion,
    CurrentUserResponse,
    UserAdminResponse,
    UserCreate,
    UserListQuery,
    UserResponse,
    UserUpdate,
)
from app.services.password_policy import PasswordPolicy
from app.services.user_service import user_service

router = APIRouter(route_class=ApiRoute)

UserId = Annotated[uuid.UUID, Path(description="The user's id.")]
RoleId = Annotated[uuid.UUID, Path(description="The role's id.")]

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


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(IncorrectPasswordException, ConflictException, ServerBusyException),
)
async def delete_me(
    data: AccountDeletion,
    principal: CurrentPrincipal,
    db: DbSession,
    auth: Auth,
    client: Client,
    resources: AppResources,
    storage: StorageDep,
) -> None:
    """Erase your account: profile, sessions (every token stops at once), articles and
    files. Needs your password (400 `incorrect_password`, limited like login). The last
    administrator cannot erase itself (409): make someone else one first."""
    await auth.confirm_password(db, principal.user_id, data.password, client)
    sessions = await user_service.erase(db, resources.cache, storage, principal.user_id)
    await auth.mark_sessions_ended(sessions)


@router.get(
    "",
    response_model=Page[UserAdminResponse],
    dependencies=READ_USERS,
    responses=errors(InvalidCursorException),
)
async def list_users(query: Annotated[UserListQuery, Query()], db: ReadDbSession) -> Response:
    """Users with their roles, newest first unless `sort` says otherwise."""
    return json_response(await user_service.list_with_roles(db, query))


@router.post(
    "",
    response_model=UserAdminResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=ADMINISTER_USERS,
    responses=errors(
        GrantRefusedException, ConflictException, PasswordRefusedException, ServerBusyException
    ),
)
async def create_user(
    data: UserCreate, principal: CurrentPrincipal, db: DbSession, resources: AppResources
) -> UserAdminResponse:
    """Create an account with the default role (an email taken already is 409). The
    caller must hold every permission of that role (403, as for assigning it), and the
    password must pass the policy (422)."""
    settings = resources.settings
    await PasswordPolicy.from_settings(settings).ensure_acceptable(data.password, email=data.email)
    user = await user_service.register(
        db, data, resources.password_hasher, [settings.default_role], granter=principal
    )
    return UserAdminResponse.model_validate(await user_service.get_with_roles(db, user.id))


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=ADMINISTER_USERS,
    responses=errors(
        GrantRefusedException, OwnAccountException, NotFoundException, ConflictException
    ),
)
async def delete_user(
    user_id: UserId,
    principal: CurrentPrincipal,
    db: DbSession,
    auth: Auth,
    resources: AppResources,
    storage: StorageDep,
) -> None:
    """Erase a user as `DELETE /users/me` does. Not a user who holds permissions you do
    not (403), nor the last administrator (409), nor yourself (403: `DELETE /users/me`
    asks for your password)."""
    if user_id == principal.user_id:
        raise OwnAccountException()
    await user_service.ensure_outranks(db, principal, user_id)
    sessions = await user_service.erase(db, resources.cache, storage, user_id)
    await auth.mark_sessions_ended(sessions)


@router.get(
    "/{user_id}",
    response_model=UserAdminResponse,
    dependencies=READ_USERS,
    responses=errors(NotFoundException),
    description="A user with their roles.",
)
async def read_user(user_id: UserId, db: ReadDbSession) -> UserAdminResponse:
    user = await user_service.get_with_roles(db, user_id)
    return UserAdminResponse.model_validate(user)


@router.put(
    "/{user_id}/roles/{role_id}",
    response_model=UserAdminResponse,
    dependencies=ADMINISTER_USERS,
    responses=errors(GrantRefusedException, NotFoundException),
)
async def add_role(
    user_id: UserId,
    role_id: RoleId,
    db: DbSession,
    resources: AppResources,
    principal: CurrentPrincipal,
) -> UserAdminResponse:
    """Give the user a role (holding it already is fine); effective on their next request.

    Only a role whose permissions you hold yourself (403 otherwise).
    """
    user = await user_service.add_role(db, resources.cache, user_id, role_id, principal)
    return UserAdminResponse.model_validate(user)


@router.delete(
    "/{user_id}/roles/{role_id}",
    response_model=UserAdminResponse,
    dependencies=ADMINISTER_USERS,
    responses=errors(GrantRefusedException, ConflictException, NotFoundException),
)
async def remove_role(
    user_id: UserId,
    role_id: RoleId,
    db: DbSession,
    resources: AppResources,
    principal: CurrentPrincipal,
) -> UserAdminResponse:
    """Take a role from the user; effective on their next request."""
    user = await user_service.remove_role(db, resources.cache, user_id, role_id, principal)
    return UserAdminResponse.model_validate(user)


@router.post(
    "/{user_id}/activate",
    response_model=UserAdminResponse,
    dependencies=ADMINISTER_USERS,
    responses=errors(GrantRefusedException, NotFoundException),
    description="Let a deactivated user in again (active already is fine).",
)
async def activate_user(
    user_id: UserId, db: DbSession, resources: AppResources, principal: CurrentPrincipal
) -> UserAdminResponse:
    user = await user_service.set_active(db, resources.cache, user_id, active=True, actor=principal)
    return UserAdminResponse.model_validate(user)


@router.post(
    "/{user_id}/deactivate",
    response_model=UserAdminResponse,
    dependencies=ADMINISTER_USERS,
    responses=errors(GrantRefusedException, ConflictException, NotFoundException),
)
async def deactivate_user(
    user_id: UserId,
    db: DbSession,
    resources: AppResources,
    principal: CurrentPrincipal,
    auth: Auth,
) -> UserAdminResponse:
    """Lock the user out: every session of theirs ends at once, so reactivating the
    account later does not bring their old tokens back."""
    user = await user_service.set_active(
        db, resources.cache, user_id, active=False, actor=principal
    )
    await auth.logout_all(db, user_id)
    return UserAdminResponse.model_validate(user)
