"""Typed errors -> HTTP status codes, with a message naming what is wrong.

Every error body is `{"error": <type>, "detail": <message>}`; nothing partial is stored on
any of these paths (the services validate before writing and write in one transaction).
"""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

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


def install_error_handlers(app: FastAPI) -> None:
    """Register one handler per typed error."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        code = next(
            (code for kind, code in STATUS_BY_ERROR.items() if isinstance(exc, kind)),
            status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
        return JSONResponse(
            status_code=code, content={"error": type(exc).__name__, "detail": str(exc)}
        )

    for kind in STATUS_BY_ERROR:
        app.add_exception_handler(kind, handle)
