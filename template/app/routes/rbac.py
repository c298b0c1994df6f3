"""Access control administration: the catalog, roles and their grants."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from app.exceptions import ConflictException, GrantRefusedException, NotFoundException
from app.routes.api_route import ApiRoute
from app.routes.deps import AppResources, CurrentPrincipal, DbSession
from app.routes.openapi import errors
from app.routes.permissions import require_permission
from app.schemas.rbac import (
    ActionResponse,
    FeatureResponse,
    PermissionName,
    PermissionResponse,
    RoleCreate,
    RoleResponse,
    RoleUpdate,
)
from app.services.role_service import role_service

router = APIRouter(route_class=ApiRoute)

RoleId = Annotated[uuid.UUID, Path(description="The role's id.")]
Permission = Annotated[
    PermissionName, Path(description="The permission, `feature:action` (see `/rbac/permissions`).")
]

READ_ROLES = [Depends(require_permission("roles:read"))]
ADMINISTER_ROLES = [Depends(require_permission("roles:admin"))]


@router.get(
    "/features",
    response_model=list[FeatureResponse],
    dependencies=READ_ROLES,
    description="The features permissions are about (`articles`, `users`...).",
)
async def list_features(db: DbSession) -> list[FeatureResponse]:
    return [FeatureResponse.model_validate(row) for row in await role_service.list_features(db)]


@router.get(
    "/actions",
    response_model=list[ActionResponse],
    dependencies=READ_ROLES,
    description="The actions a permission allows on a feature (`read`, `write`...).",
)
async def list_actions(db: DbSession) -> list[ActionResponse]:
    return [ActionResponse.model_validate(row) for row in await role_service.list_actions(db)]


@router.get("/permissions", response_model=list[PermissionResponse], dependencies=READ_ROLES)
async def list_permissions(db: DbSession) -> list[PermissionResponse]:
    """Every permission, `feature:action`; `feature:admin` implies the feature's others."""
    permissions = await role_service.list_permissions(db)
    return [PermissionResponse.model_validate(row) for row in permissions]


@router.get(
    "/roles",
    response_model=list[RoleResponse],
    dependencies=READ_ROLES,
    description="Every role with its permissions.",
)
async def list_roles(db: DbSession) -> list[RoleResponse]:
    return [RoleResponse.model_validate(role) for role in await role_service.list_roles(db)]


@router.post(
    "/roles",
    response_model=RoleResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=ADMINISTER_ROLES,
    responses=errors(GrantRefusedException, ConflictException, NotFoundException),
)
async def create_role(data: RoleCreate, db: DbSession, principal: CurrentPrincipal) -> RoleResponse:
    """Create a role with a set of permissions. The name must be free (409 otherwise);
    permissions you do not hold yourself cannot be in it (403)."""
    return RoleResponse.model_validate(await role_service.create_role(db, data, principal))


@router.get(
    "/roles/{role_id}",
    response_model=RoleResponse,
    dependencies=READ_ROLES,
    responses=errors(NotFoundException),
    description="One role with its permissions.",
)
async def read_role(role_id: RoleId, db: DbSession) -> RoleResponse:
    return RoleResponse.model_validate(await role_service.get_role(db, role_id))


@router.patch(
    "/roles/{role_id}",
    response_model=RoleResponse,
    dependencies=ADMINISTER_ROLES,
    responses=errors(GrantRefusedException, ConflictException, NotFoundException),
)
async def update_role(
    role_id: RoleId,
    data: RoleUpdate,
    db: DbSession,
    resources: AppResources,
    principal: CurrentPrincipal,
) -> RoleResponse:
    """Rename a role or change its description. System roles cannot be renamed (409)."""
    role = await role_service.update_role(db, resources.cache, role_id, data, principal)
    return RoleResponse.model_validate(role)


@router.delete(
    "/roles/{role_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=ADMINISTER_ROLES,
    responses=errors(GrantRefusedException, ConflictException, NotFoundException),
)
async def delete_role(
    role_id: RoleId, db: DbSession, resources: AppResources, principal: CurrentPrincipal
) -> None:
    """Delete a role; its holders lose it at once. System roles cannot be deleted (409)."""
    await role_service.delete_role(db, resources.cache, role_id, principal)


@router.put(
    "/roles/{role_id}/permissions/{permission}",
    response_model=RoleResponse,
    dependencies=ADMINISTER_ROLES,
    responses=errors(GrantRefusedException, ConflictException, NotFoundException),
)
async def grant_permission(
    role_id: RoleId,
    permission: Permission,
    db: DbSession,
    resources: AppResources,
    principal: CurrentPrincipal,
) -> RoleResponse:
    """Grant a permission to a role (granted already is fine); holders get it at once.

    Only a permission you hold yourself (403 otherwise).
    """
    role = await role_service.grant(db, resources.cache, role_id, permission, principal)
    return RoleResponse.model_validate(role)


@router.delete(
    "/roles/{role_id}/permissions/{permission}",
    response_model=RoleResponse,
    dependencies=ADMINISTER_ROLES,
    responses=errors(GrantRefusedException, ConflictException, NotFoundException),
)
async def revoke_permission(
    role_id: RoleId,
    permission: Permission,
    db: DbSession,
    resources: AppResources,
    principal: CurrentPrincipal,
) -> RoleResponse:
    """Revoke a permission from a role; its holders lose it on their next request.

    Only a permission you hold yourself (403 otherwise). The `admin` role holds every
    permission, always (409): its holders could not grant one back once lost. Nor may
    the last active holder of `users:admin` or `roles:admin` lose it (409).
    """
    role = await role_service.revoke(db, resources.cache, role_id, permission, principal)
    return RoleResponse.model_validate(role)
