"""HTTP routes. `api_router` is mounted under /api/v1; health checks live at the root."""

from fastapi import APIRouter

from app.routes import articles, auth, files, rbac, users

api_router = APIRouter()
api_router.include_router(auth.router, prefix="/auth", tags=["auth"])
api_router.include_router(users.router, prefix="/users", tags=["users"])
api_router.include_router(articles.router, prefix="/articles", tags=["articles"])
api_router.include_router(files.router, prefix="/files", tags=["files"])
api_router.include_router(rbac.router, prefix="/rbac", tags=["rbac"])
