"""What tests/test_clients.py needs to know of a rendered service, read without serving it.

Run in the service's directory with it on PYTHONPATH; prints one JSON object:
`document`, the OpenAPI document as `make openapi` writes it, and `storage_operations`,
the ids of the operations whose dependency tree reaches the storage (`get_storage`):
the ones a storage backend's answer changes.
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
        document["paths"][route.path_format][method.lower()]["operationId"]
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute) and route.include_in_schema
        if get_storage in calls(route.dependant)
        for method in route.methods or ()
    )
    print(json.dumps({"document": document, "storage_operations": storage_operations}))


if __name__ == "__main__":
    main()
