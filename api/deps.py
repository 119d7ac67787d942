"""FastAPI dependencies: the application's services and API-key authentication."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from api.runtime import AppRuntime


def get_app_state(request: Request) -> AppRuntime:
    """The runtime opened by the lifespan."""
    state: AppRuntime = request.app.state.turnjudge
    return state


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def require_api_key(
    app: Annotated[AppRuntime, Depends(get_app_state)],
    key: Annotated[str | None, Security(api_key_header)],
) -> None:
    """Accept the request when API_KEYS is empty or X-API-Key matches one of them."""
    allowed = app.settings.api_keys
    if not allowed:
        return
    if key is None or not any(
        secrets.compare_digest(key, candidate.get_secret_value()) for candidate in allowed
    ):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid X-API-Key header",
        )


AppDep = Annotated[AppRuntime, Depends(get_app_state)]
