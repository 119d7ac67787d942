"""FastAPI dependencies: the application's services, authentication and strict JSON.

Authentication runs in the route itself, before the body is read or validated: a request
without a valid key gets 401 whatever its body holds (even one that is not JSON).

- `X-API-Key`: one of API_KEYS; the request acts for that key's tenant. Sessions of another
  tenant do not exist for it (404, the same body as an unknown id).
- `X-Candidate-Token`: the token `POST /interviews` returned. It is accepted only by
  `GET /interviews/{id}` and `POST /interviews/{id}/answers`, for that one interview, so a
  candidate's browser can run the interview without the platform's key.

With API_KEYS empty, authentication is off and everything belongs to tenant `default`.

Every dependency is `async def`, though none awaits: FastAPI runs a plain `def` dependency
in a worker thread, and that hand-off (a thread wake-up and a GIL switch per dependency per
request) was about 1.2 ms of CPU per request, and more wall time under concurrent load.
"""

from __future__ import annotations

import json
import math
import secrets
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from fastapi import Depends, Header, HTTPException, Request, Response, Security, status
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader

from api.runtime import AppRuntime
from storage.errors import SessionNotFoundError
from storage.settings import DEFAULT_TENANT

API_KEY_HEADER = "X-API-Key"
CANDIDATE_TOKEN_HEADER = "X-Candidate-Token"


def runtime_of(request: Request) -> AppRuntime:
    """The runtime opened by the lifespan."""
    state: AppRuntime = request.app.state.turnjudge
    return state


async def get_app_state(request: Request) -> AppRuntime:
    """The runtime opened by the lifespan, as a dependency (async: no worker thread)."""
    return runtime_of(request)


AppDep = Annotated[AppRuntime, Depends(get_app_state)]

# auto_error=False: the schemes only document the headers; `authenticate` decides.
api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    scheme_name="ApiKey",
    description="One of API_KEYS (`tenant:key` entries). Not needed when API_KEYS is empty.",
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant, or the candidate of one session of a tenant."""

    tenant: str
    session_id: uuid.UUID | None = None
    """Set for a candidate token: the one session it may use."""


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'},
    )


def _tenant_of_key(app: AppRuntime, presented: str) -> str | None:
    """The tenant whose key is `presented` (every key compared, in constant time each)."""
    given = presented.encode("utf-8", "surrogateescape")
    tenant = None
    for entry in app.settings.api_keys:
        if secrets.compare_digest(given, entry.get_secret_value().encode("utf-8")):
            tenant = entry.tenant
    return tenant


async def authenticate(request: Request, *, candidate_ok: bool) -> Principal:
    """The caller, or 401. Runs before the body is read."""
    app = runtime_of(request)
    if not app.settings.api_keys:
        return Principal(DEFAULT_TENANT)
    key = request.headers.get(API_KEY_HEADER)
    if key is not None:
        tenant = _tenant_of_key(app, key)
        if tenant is None:
            raise _unauthorized(f"invalid {API_KEY_HEADER} header")
        return Principal(tenant)
    token = request.headers.get(CANDIDATE_TOKEN_HEADER)
    if token is None:
        expected = (
            f"{API_KEY_HEADER} or {CANDIDATE_TOKEN_HEADER}" if candidate_ok else (API_KEY_HEADER)
        )
        raise _unauthorized(f"missing {expected} header")
    if not candidate_ok:
        raise _unauthorized(
            f"a {CANDIDATE_TOKEN_HEADER} only reads and answers its interview; "
            f"this route needs {API_KEY_HEADER}"
        )
    try:
        session_id = uuid.UUID(str(request.path_params.get("session_id")))
        session = await app.services.storage.sessions.session_for_candidate(session_id, token)
    except (ValueError, SessionNotFoundError):
        raise _unauthorized(f"invalid {CANDIDATE_TOKEN_HEADER} for this interview") from None
    return Principal(session.tenant, session.id)


def _principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


async def api_key_principal(
    request: Request, _key: Annotated[str | None, Security(api_key_header)]
) -> Principal:
    """The caller of a route that needs X-API-Key (authenticated by the route)."""
    return _principal(request)


async def interview_principal(
    request: Request,
    _key: Annotated[str | None, Security(api_key_header)],
    _token: Annotated[
        str | None,
        Header(
            alias=CANDIDATE_TOKEN_HEADER,
            description="Instead of X-API-Key: the `candidate_token` POST /interviews returned. "
            "It reads and answers that one interview, nothing else.",
        ),
    ] = None,
) -> Principal:
    """The caller of a route that also takes a candidate token (authenticated by the route)."""
    return _principal(request)


TenantDep = Annotated[Principal, Depends(api_key_principal)]
InterviewCallerDep = Annotated[Principal, Depends(interview_principal)]


class StrictJSONRequest(Request):
    """A request whose JSON body must be standard JSON in UTF-8.

    Python's parser accepts NaN, Infinity and overflowing numbers and fails with other
    errors than `JSONDecodeError` on bad UTF-8, huge integers or deep nesting; every one of
    those becomes a `JSONDecodeError`, which FastAPI answers with 422 (`field: body`).
    """

    async def json(self) -> Any:
        """The parsed body; `json.JSONDecodeError` when it is not standard JSON."""
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class _NotJSONError(ValueError):
    """A value Python's parser accepts but JSON does not have."""


def _refuse_constant(name: str) -> Any:
    raise _NotJSONError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJSONError(f"number {text[:20]} is out of range")
    return value


def parse_json(body: bytes) -> Any:
    """Standard JSON from UTF-8 bytes, or `json.JSONDecodeError` saying why not."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        doc = body.decode("utf-8", "replace")
        raise json.JSONDecodeError("the body is not valid UTF-8", doc, exc.start) from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("arrays or objects nested too deeply", text, 0) from None
    except ValueError as exc:  # NaN/Infinity, 1e999, an integer of more than 4300 digits
        reason = str(exc) if isinstance(exc, _NotJSONError) else "a number is too large"
        raise json.JSONDecodeError(reason, text, 0) from None


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route declares, its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


class StrictJSONRoute(APIRoute):
    """A route parsing its body with `StrictJSONRequest`, refusing unknown query parameters.

    An unknown query parameter is a 422, like an unknown body field.
    """

    def get_route_handler(self) -> Handler:
        """FastAPI's handler, given a `StrictJSONRequest`."""
        handler = super().get_route_handler()
        known = _query_names(self.dependant)

        async def strict(request: Request) -> Response:
            unknown = [name for name in request.query_params if name not in known]
            if unknown:
                raise RequestValidationError(
                    [
                        {
                            "type": "extra_forbidden",
                            "loc": ("query", unknown[0]),
                            "msg": "Extra inputs are not permitted",
                            "input": request.query_params[unknown[0]],
                        }
                    ]
                )
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


class ApiKeyRoute(StrictJSONRoute):
    """A route that authenticates (X-API-Key) before anything else, the body included."""

    candidate_ok: ClassVar[bool] = False

    def get_route_handler(self) -> Handler:
        """Authenticate, then run FastAPI's handler."""
        handler = super().get_route_handler()
        candidate_ok = self.candidate_ok

        async def authenticated(request: Request) -> Response:
            request.state.principal = await authenticate(request, candidate_ok=candidate_ok)
            return await handler(request)

        return authenticated


class InterviewRoute(ApiKeyRoute):
    """Like `ApiKeyRoute`, and a candidate token of the interview in the path is accepted."""

    candidate_ok: ClassVar[bool] = True
