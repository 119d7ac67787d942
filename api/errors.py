"""One error contract: every response that is not a success has the body `ErrorOut`.

`{"error": <code>, "detail": <message>, "field"?: <location>}`:

- `error` is a stable code: the typed error's class name (`SessionNotFoundError`,
  `TurnConflictError`, ...) or, for what the HTTP layer refuses, one of `ValidationError`
  (422), `Unauthorized` (401), `NotFound` (404, no such route), `MethodNotAllowed` (405),
  `ContentTooLarge` (413), `HeadersTooLarge` (431), `InternalError` (500) and
  `DatabaseUnavailable` (503).
- `detail` says what is wrong. It quotes at most a short excerpt of the input (never the
  whole value: a 1 MB answer gives a short error), with anything JSON cannot carry escaped.
- `field` (422 only) is where the problem is: `body.transcript[2].answer`, `query.text`,
  `path.session_id`, `body` for a body that is not JSON.

Nothing partial is stored on any of these paths: the request models refuse bad input before
any service runs, and the services validate before writing and write in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.interviews import NoPendingQuestionError, SessionKindError
from api.validation import InvalidRequestError
from nodes.close_session import EvaluationIncompleteError
from nodes.intake_answer import InvalidAnswerError
from nodes.judges.factory import JudgeConfigurationError
from nodes.judges.rubrics import UnknownPositionError
from nodes.open_session import InvalidInterviewInputError
from nodes.question_generation import NoQuestionsLeftError
from storage.errors import (
    EvaluationTypeError,
    InvalidDetailsError,
    InvalidTextError,
    SessionEndedError,
    SessionIncompleteError,
    SessionNotFoundError,
    TurnConflictError,
    TurnNotAnsweredError,
    TurnNotFoundError,
)

logger = logging.getLogger("api.errors")

#: Longest `detail` sent, and longest excerpt of a client's value quoted in it.
MAX_DETAIL_CHARS = 500
MAX_EXCERPT_CHARS = 40


class ErrorOut(BaseModel):
    """The body of every error response (4xx and 5xx)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "ValidationError",
                    "detail": "String should have at least 1 character",
                    "field": "body.transcript[2].answer",
                },
                {
                    "error": "SessionNotFoundError",
                    "detail": "session 0b5c7a52-3f0e-4c1e-9d43-5f1f2b8d6a11 does not exist",
                },
            ]
        }
    )

    error: str = Field(
        description="Stable code: a typed error's class name (e.g. SessionNotFoundError) or "
        "ValidationError, Unauthorized, NotFound, MethodNotAllowed, ContentTooLarge, "
        "HeadersTooLarge, InternalError, DatabaseUnavailable.",
    )
    detail: str = Field(description="What is wrong, in words; quotes at most a short excerpt.")
    field: str | None = Field(
        default=None,
        description="Where the problem is (422): body.transcript[2].answer, query.text, "
        "path.session_id, or body for a body that is not JSON. Absent otherwise.",
    )


STATUS_BY_ERROR: dict[type[Exception], int] = {
    SessionNotFoundError: status.HTTP_404_NOT_FOUND,
    TurnNotFoundError: status.HTTP_404_NOT_FOUND,
    SessionEndedError: status.HTTP_409_CONFLICT,
    TurnConflictError: status.HTTP_409_CONFLICT,
    TurnNotAnsweredError: status.HTTP_409_CONFLICT,
    NoPendingQuestionError: status.HTTP_409_CONFLICT,
    SessionKindError: status.HTTP_409_CONFLICT,
    InvalidRequestError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    SessionIncompleteError: status.HTTP_409_CONFLICT,
    NoQuestionsLeftError: status.HTTP_409_CONFLICT,
    EvaluationTypeError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    InvalidDetailsError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    InvalidTextError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    InvalidAnswerError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    InvalidInterviewInputError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    UnknownPositionError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    # The judge (an upstream LLM) failed after its retries; the session stays open.
    EvaluationIncompleteError: status.HTTP_502_BAD_GATEWAY,
    JudgeConfigurationError: status.HTTP_500_INTERNAL_SERVER_ERROR,
}

#: Codes of the errors the HTTP layer itself produces.
CODE_BY_STATUS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "ContentTooLarge",
    415: "UnsupportedMediaType",
    422: "ValidationError",
    431: "HeadersTooLarge",
    500: "InternalError",
    503: "DatabaseUnavailable",
}


def safe_text(value: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """`value` cut to `limit` characters, lone surrogates written as escapes.

    UTF-8 cannot carry a lone surrogate; escaping it means rendering an error never fails.
    """
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def excerpt(value: object) -> str:
    """A short, printable quotation of a client's value."""
    if isinstance(value, str):
        text = repr(value[:MAX_EXCERPT_CHARS]) + ("…" if len(value) > MAX_EXCERPT_CHARS else "")
    elif isinstance(value, bytes):
        text = f"{len(value)} bytes"
    elif isinstance(value, Mapping):
        text = "an object"
    elif isinstance(value, list | tuple):
        text = f"an array of {len(value)}"
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = repr(value)[:MAX_EXCERPT_CHARS]
    return safe_text(text, MAX_EXCERPT_CHARS + 10)


def error_response(
    status_code: int,
    error: str,
    detail: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The one way an error body is built."""
    body = ErrorOut(
        error=error, detail=safe_text(detail), field=safe_text(field, 200) if field else None
    )
    return JSONResponse(
        status_code=status_code,
        content=body.model_dump(exclude_none=True),
        headers=dict(headers) if headers else None,
    )


def location(loc: Sequence[int | str]) -> str:
    """`("body", "transcript", 2, "answer")` -> `body.transcript[2].answer`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    """(field, message) of one pydantic/FastAPI validation error."""
    kind = str(error.get("type", ""))
    loc = tuple(error.get("loc", ()))
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        position = loc[1] if len(loc) > 1 else None
        where = f" at position {position}" if isinstance(position, int) and position else ""
        return "body", f"the body is not valid JSON: {reason}{where}"
    field = location(loc)
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = error.get("input")
    if kind == "model_attributes_type" and loc == ("body",) and isinstance(value, bytes):
        return field, "the body must be a JSON object sent as Content-Type: application/json"
    if kind == "string_unicode":  # pydantic's word for a lone surrogate
        return field, "must be valid Unicode (no lone surrogate code points)"
    if kind == "missing":
        return field, "field required"
    if kind == "extra_forbidden":
        return field, "unknown field (not allowed)"
    return field, f"{message} (got {excerpt(value)})"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if not errors:
        return error_response(422, "ValidationError", "the request is invalid")
    field, message = _describe(errors[0])
    if len(errors) > 1:
        more = len(errors) - 1
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return error_response(422, "ValidationError", message, field=field)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if code == 404 and detail == HTTPStatus.NOT_FOUND.phrase:
        detail = f"no route {request.method} {safe_text(request.url.path, 100)}"
    elif code == 405 and detail == HTTPStatus.METHOD_NOT_ALLOWED.phrase:
        detail = f"{request.method} is not allowed on {safe_text(request.url.path, 100)}"
    error = CODE_BY_STATUS.get(code) or HTTPStatus(code).phrase.title().replace(" ", "")
    return error_response(code, error, detail, headers=exc.headers)


async def _typed_error(request: Request, exc: Exception) -> JSONResponse:
    code = next(
        (code for kind, code in STATUS_BY_ERROR.items() if isinstance(exc, kind)),
        status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
    if code >= 500:
        logger.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
    return error_response(code, type(exc).__name__, str(exc))


def _database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the database cannot be reached."""
    import psycopg
    import psycopg_pool
    from sqlalchemy import exc as sa_exc

    kinds: tuple[type[BaseException], ...] = (
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.DisconnectionError,
        sa_exc.TimeoutError,
        psycopg.OperationalError,
        psycopg.InterfaceError,
        psycopg_pool.PoolTimeout,
        ConnectionError,
        TimeoutError,
    )
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return True
        if isinstance(current, OSError) and _raised_by_a_driver(current):
            return True  # e.g. the server's unix socket is gone: FileNotFoundError
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


_DRIVERS = ("sqlalchemy.", "asyncpg.", "psycopg.", "psycopg_pool.")


def _raised_by_a_driver(exc: BaseException) -> bool:
    """Whether `exc` went through the database driver or the pool (a connection attempt)."""
    traceback = exc.__traceback__
    while traceback is not None:
        module = str(traceback.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(_DRIVERS):
            return True
        traceback = traceback.tb_next
    return False


def unhandled_error_response(exc: BaseException) -> JSONResponse:
    """503 when the database is unreachable, else a 500 that reveals nothing inside."""
    if _database_unavailable(exc):
        return error_response(
            503,
            "DatabaseUnavailable",
            "database unavailable; retry later",
            headers={"Retry-After": "5"},
        )
    return error_response(500, "InternalError", "internal error; it has been logged")


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return unhandled_error_response(exc)


class CatchAllMiddleware:
    """Turn any exception the handlers do not know into the JSON 500/503 of the contract.

    Starlette's own last-resort handler sends the same body but re-raises afterwards (for
    servers to log); here the error is logged once and the request ends normally.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; answer an exception it lets through (before any response) as JSON."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            logger.exception(
                "unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc
            )
            await unhandled_error_response(exc)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers: validation, HTTP, typed errors, and the last resort."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for kind in STATUS_BY_ERROR:
        app.add_exception_handler(kind, _typed_error)
    app.add_exception_handler(Exception, _unhandled)
    app.add_middleware(CatchAllMiddleware)
