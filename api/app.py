"""The FastAPI application: lifespan-managed services, routes, one error contract, limits.

Start with `turnjudge serve` (uvicorn, see `api.server`). OpenAPI is at /docs (Swagger UI)
and /redoc, both served from local assets (no CDN).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api.errors import install_error_handlers
from api.limits import BodyLimitMiddleware, HeaderLimitMiddleware
from api.pages import pages_router
from api.routes import health_router, interview_router, router
from api.runtime import open_runtime
from api.settings import Settings, get_settings
from storage.services import Storage

DESCRIPTION = """\
Conduct and evaluate interviews with a LangGraph state machine.

**Errors.** Every error response has the body `ErrorOut`:
`{"error": code, "detail": message, "field"?: location}`. A 422 names the field
(`body.transcript[2].answer`, `query.text`, `path.session_id`, or `body` when the body is
not standard JSON: unparsable JSON, NaN or Infinity, invalid UTF-8 are all 422). Bodies over
API_MAX_BODY_BYTES are 413, headers over API_MAX_HEADER_BYTES are 431.

**Authentication** (when API_KEYS is set) runs before the body is read: `X-API-Key` acts for
the key's tenant, and another tenant's sessions are 404 on every route. `POST /interviews`
also returns a `candidate_token`; sent as `X-Candidate-Token` it reads and answers that one
interview only.
"""


def create_app(settings: Settings | None = None, storage: Storage | None = None) -> FastAPI:
    """Build the app. `storage` may be injected (tests); else it is opened from settings."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings, storage) as runtime:
            app.state.turnjudge = runtime
            yield

    # Swagger UI and ReDoc from assets bundled in the fastapi-offline wheel: /docs works offline.
    app = FastAPIOffline(
        title="turnjudge",
        version="0.1.0",
        summary="Conduct and evaluate interviews with a LangGraph state machine.",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Added last = outermost: headers are checked first, then the body's size.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(HeaderLimitMiddleware, max_bytes=settings.api_max_header_bytes)
    app.include_router(health_router)
    app.include_router(router)
    app.include_router(pages_router)
    app.include_router(interview_router)
    _tidy_openapi(app)
    return app


def _tidy_openapi(app: FastAPI) -> None:
    """Query and header parameters cannot be JSON null: drop `null` from their schemas.

    FastAPI writes an optional parameter as `anyOf: [<schema>, {type: null}]`; a client
    following that would send the string "null", which the server refuses.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                for parameter in operation.get("parameters", []):
                    if parameter.get("in") not in ("query", "header"):
                        continue
                    spec = parameter.get("schema", {})
                    options = [o for o in spec.get("anyOf", []) if o.get("type") != "null"]
                    if "anyOf" in spec and len(options) == 1:
                        del spec["anyOf"]
                        spec.update(options[0])
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
