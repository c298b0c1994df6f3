"""`require_permission`: declare the permission an endpoint needs, in either of two forms.

As a dependency, on the route or its router (or in an `Annotated` alias, which also
hands the endpoint the caller)::

    CAN_PUBLISH = [Depends(require_permission("articles:publish"))]

    @router.post("/{article_id}/publish", dependencies=CAN_PUBLISH)

As a decorator, placed under the route decorator::

    @router.post("/{article_id}/publish")
    @require_permission("articles:publish")
    async def publish_article(...): ...

Either way FastAPI resolves the check like any other dependency, before the endpoint
body runs: a caller without a valid token gets 401, one without the permission 403,
and the route's OpenAPI operation lists the security scheme. Unknown permission names
raise ValueError when the module defining the route is imported, not on a request.

This lives in the routes layer, not in `app/core/permissions.py` as the seed
architecture had it: the check needs the authenticated caller, which only the routes
layer resolves (core sits below services and may not import them). The rule itself,
including what `feature:admin` implies, is `app.services.authorization.has_permission`.
"""

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar, overload

from fastapi import Depends

from app.core.rbac import split_permission
from app.routes.deps import CurrentPrincipal
from app.services.authorization import ensure_permission
from app.services.principal import Principal

EndpointT = TypeVar("EndpointT", bound=Callable[..., Awaitable[Any]])


class PermissionRequirement:
    """What `require_permission` returns: a dependency and a decorator in one.

    FastAPI calls a dependency with keyword arguments only (`principal=`); Python calls
    a decorator with the endpoint as its single positional argument. `__call__` tells
    the two apart that way. `__wrapped__` names `check`, so FastAPI (like
    `inspect.signature`) sees an async function of the caller and awaits what calling
    this object returns: the check runs on the event loop, not in a worker thread.
    """

    def __init__(self, permission: str) -> None:
        feature, action = split_permission(permission)
        self.permission = permission
        self.__wrapped__ = self.check
        self._parameter = f"_requires_{feature}_{action}"

    @overload
    def __call__(self, endpoint: EndpointT, /) -> EndpointT: ...

    @overload
    def __call__(self, *, principal: Principal) -> Awaitable[Principal]: ...

    def __call__(
        self,
        endpoint: Callable[..., Awaitable[Any]] | None = None,
        *,
        principal: Principal | None = None,
    ) -> Callable[..., Awaitable[Any]] | Awaitable[Principal]:
        if principal is not None:
            return self.check(principal)
        if endpoint is None:
            raise TypeError("require_permission(...) needs an endpoint or a principal")
        return self._guard(endpoint)

    async def check(self, principal: CurrentPrincipal) -> Principal:
        ensure_permission(principal, self.permission)
        return principal

    def _guard(self, endpoint: EndpointT) -> EndpointT:
        """The endpoint with one more parameter, whose dependency is this check."""
        if not inspect.iscoroutinefunction(endpoint):
            raise TypeError(f"@require_permission guards async endpoints; {endpoint!r} is not")
        parameter_name = self._parameter

        @functools.wraps(endpoint)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            del kwargs[parameter_name]  # resolved (so checked) by FastAPI; not the endpoint's
            return await endpoint(*args, **kwargs)

        signature = inspect.signature(endpoint)
        # First: FastAPI resolves dependencies in parameter order, so the check runs before
        # any dependency of the endpoint's own (one that reads an upload's body, say).
        check = inspect.Parameter(
            parameter_name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[Principal, Depends(self)],
        )
        guarded.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[check, *signature.parameters.values()]
        )
        # FastAPI shows the docstring as the operation's description: say what it needs.
        requirement = f"Requires the `{self.permission}` permission."
        guarded.__doc__ = "\n\n".join(
            filter(None, [inspect.cleandoc(endpoint.__doc__ or ""), requirement])
        )
        return guarded  # type: ignore[return-value]


def require_permission(permission: str) -> PermissionRequirement:
    """Require `permission` (from `app.core.rbac`) of the caller; see the module docstring."""
    return PermissionRequirement(permission)
