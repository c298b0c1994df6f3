"""What tests/test_clients.py needs to know of a rendered service, read without serving it.

Run in the service's directory with it on PYTHONPATH; prints one JSON object:
`document`, the OpenAPI document as `make openapi` writes it, and `storage_operations`,
the ids of the operations whose dependency tree reaches the storage (`get_storage`),
HEAD twins of GETs included: the ones a storage backend's answer changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from app.main import create_app
from app.routes.deps import get_storage
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts


def calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    yield dependant.call
    for sub in dependant.dependencies:
        yield from calls(sub)


def main() -> None:
    app = create_app()
    document = app.openapi()
    storage_operations = sorted(
        document["paths"][route.path_format][method]["operationId"]
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute) and route.include_in_schema
        if get_storage in calls(route.dependant)
        # A GET's HEAD is documented beside it, and answered by the same code.
        for get_or_other in route.methods or ()
        for method in (["get", "head"] if get_or_other == "GET" else [get_or_other.lower()])
    )
    print(json.dumps({"document": document, "storage_operations": storage_operations}))


if __name__ == "__main__":
    main()
