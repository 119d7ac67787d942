"""The FastAPI application: lifespan-managed services, routes, typed error handlers.

Start with `turnjudge serve` (uvicorn). OpenAPI is at /docs (Swagger UI) and /redoc, both
served from local assets (no CDN).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api.errors import install_error_handlers
from api.pages import pages_router
from api.routes import health_router, router
from api.runtime import open_runtime
from storage.services import Storage
from storage.settings import Settings, get_settings


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
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(router)
    app.include_router(pages_router)
    return app
