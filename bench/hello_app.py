"""The framework floor: the least a FastAPI endpoint can cost on this machine.

Served exactly like the generated service (`uvicorn --factory`, same workers, same
uvicorn options), it answers a small JSON object with no middleware, dependencies,
database or cache, so "users/me as a share of this" isolates what the service adds.
"""

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"message": "hello"}

    return app
