"""HTTP routes. `api_router` is mounted under /api/v1; health checks live at the root."""

from fastapi import APIRouter, Depends

from app.routes import articles, auth, files, rbac, users
from app.routes.deps import identify_caller

# Every API request is identified and counted against its rate limit exactly once.
api_router = APIRouter(
    dependencies=[Depends(identify_caller)],
    responses={429: {"description": "Rate limit reached: retry after `Retry-After` seconds"}},
)
api_router.include_router(auth.router, prefix="/auth", tags=["auth"])
api_router.include_router(users.router, prefix="/users", tags=["users"])
api_router.include_router(articles.router, prefix="/articles", tags=["articles"])
api_router.include_router(files.router, prefix="/files", tags=["files"])
api_router.include_router(rbac.router, prefix="/rbac", tags=["rbac"])
