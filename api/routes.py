"""HTTP routes: thin translations between JSON and the interview facade / services.

Each route authenticates first (see `api.deps`), acts for the caller's tenant, and documents
exactly the error statuses it can return (`api.responses`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.types import DecoratedCallable
from pydantic import AfterValidator

from api.batch import as_submission
from api.callbacks import require_callback_secret
from api.deps import (
    ApiKeyRoute,
    AppDep,
    InterviewCallerDep,
    InterviewRoute,
    StrictJSONRoute,
    TenantDep,
)
from api.errors import error_response
from api.interviews import InterviewStep, QueuedSubmission, SessionReport
from api.responses import error_responses, submission_responses
from api.schemas import (
    MAX_QUERY_CHARS,
    NONBLANK_TEXT_SCHEMA,
    AnswerIn,
    EvaluationOut,
    HealthOut,
    InterviewStartOut,
    InterviewStepOut,
    Language,
    Position,
    QueuedOut,
    ReportOut,
    SimilarQuestionOut,
    StartInterview,
    SubmitTranscript,
    nonblank,
)
from api.validation import InvalidRequestError, check_callback_url
from storage.models import EvaluationType

logger = logging.getLogger("api.routes")

#: How long /health waits for the database before it reports it unavailable.
HEALTH_TIMEOUT_S = 5.0

router = APIRouter(route_class=ApiKeyRoute)
interview_router = APIRouter(route_class=InterviewRoute)
health_router = APIRouter(route_class=StrictJSONRoute)


def _step_out(step: InterviewStep) -> InterviewStepOut:
    return InterviewStepOut.model_validate(dataclasses.asdict(step))


def _report_out(report: SessionReport) -> ReportOut:
    # Read from the dataclasses' attributes: `dataclasses.asdict` would deep-copy every
    # evaluation's details first (0.65 ms for a report of 8 turns, against 0.02 ms).
    return ReportOut.model_validate(report, from_attributes=True)


def _database_down(reason: str) -> JSONResponse:
    return error_response(
        503, "DatabaseUnavailable", f"database unavailable ({reason})", headers={"Retry-After": "5"}
    )


@health_router.get(
    "/health", response_model=HealthOut, tags=["health"], responses=error_responses()
)
async def health(app: AppDep) -> HealthOut | JSONResponse:
    """Liveness: the database answers (else 503 `DatabaseUnavailable`), the judge in use."""
    try:
        count = await asyncio.wait_for(app.services.storage.questions.count(), HEALTH_TIMEOUT_S)
    except TimeoutError:
        logger.warning("health: the database did not answer within %s s", HEALTH_TIMEOUT_S)
        return _database_down(f"no answer within {HEALTH_TIMEOUT_S:g} s")
    except Exception as exc:  # whatever stops the query, the database is what is failing
        logger.warning("health: database unavailable: %r", exc)
        return _database_down(type(exc).__name__)
    return HealthOut(status="ok", database="ok", judge=app.services.judge.kind, questions=count)


@router.post(
    "/interviews",
    response_model=InterviewStartOut,
    status_code=status.HTTP_201_CREATED,
    tags=["interviews"],
    responses=error_responses(
        401, 409, 413, 422, 502, only={409: ("no_questions",), 422: ("field", "nul", "json")}
    ),
)
async def start_interview(
    body: StartInterview, app: AppDep, caller: TenantDep
) -> InterviewStartOut:
    """Open a session and get the first question, and a token for the candidate."""
    step = await app.interviews.start(
        participant_id=body.participant_id,
        position=body.position.value,
        language=body.language.value,
        max_turns=body.max_turns,
        exam_id=body.exam_id,
        run=body.run,
        tags=body.tags,
        tenant=caller.tenant,
    )
    # Stored once the session exists (open_session creates it inside the graph run).
    token = secrets.token_urlsafe(32)
    await app.services.storage.sessions.set_candidate_token(step.session_id, token)
    return InterviewStartOut(**_step_out(step).model_dump(), candidate_token=token)


@interview_router.get(
    "/interviews/{session_id}",
    response_model=InterviewStepOut,
    tags=["interviews"],
    responses=error_responses(
        401,
        404,
        409,
        422,
        only={401: ("missing_key", "invalid_key"), 409: ("not_waiting",), 422: ("session_id",)},
    ),
)
async def get_interview(
    session_id: uuid.UUID, app: AppDep, caller: InterviewCallerDep
) -> InterviewStepOut:
    """The question currently awaiting an answer (or the final status).

    Takes X-API-Key or this interview's X-Candidate-Token.
    """
    return _step_out(await app.interviews.pending(session_id, tenant=caller.tenant))


@interview_router.post(
    "/interviews/{session_id}/answers",
    response_model=InterviewStepOut,
    tags=["interviews"],
    responses=error_responses(
        401,
        404,
        409,
        413,
        422,
        502,
        only={
            401: ("missing_key", "invalid_key"),
            409: ("not_waiting", "ended", "conflict"),
            422: ("field", "answer_required", "json", "session_id"),
        },
    ),
)
async def answer(
    session_id: uuid.UUID,
    body: AnswerIn,
    app: AppDep,
    caller: InterviewCallerDep,
    turn: Annotated[
        int | None,
        Query(
            ge=1,
            le=1_000,
            description=(
                "The turn answered (as shown with the question): re-sending the same answer for "
                "it returns the current step; a different one is a 409."
            ),
        ),
    ] = None,
) -> InterviewStepOut:
    """Answer the pending question (and/or stop); the answer is stored before this returns.

    Takes X-API-Key or this interview's X-Candidate-Token. Re-sending the same answer after a
    dropped connection returns the current step (idempotent on session, turn and answer).
    """
    step = await app.interviews.answer(
        session_id,
        body.answer,
        body.stop,
        turn=turn,
        tenant=caller.tenant,
        emotion=body.emotion.summary() if body.emotion is not None else None,
    )
    return _step_out(step)


WaitQuery = Annotated[
    bool,
    Query(
        description=(
            "false: store, queue the evaluation for a worker (`turnjudge worker`) and answer "
            "202 at once; follow it with GET /sessions/{id}/report (status queued, evaluating, "
            "completed, failed). true: evaluate in the request."
        )
    ),
]
CallbackQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=2_000,
        pattern=r"^[^\x00]*$",
        description=(
            "With wait=false: http(s) URL POSTed a signed summary (X-Turnjudge-Signature: "
            "sha256=<HMAC-SHA256 of the body under the tenant's CALLBACK_SECRETS key>) when the "
            "session completes or fails"
        ),
    ),
]


def _queued(queued: QueuedSubmission, response: Response) -> QueuedOut:
    response.status_code = status.HTTP_202_ACCEPTED
    return QueuedOut.model_validate(dataclasses.asdict(queued))


def _check_callback(
    app: AppDep, tenant: str, wait: bool, callback_url: str | None, where: str
) -> None:
    """A callback needs a queued submission, an http(s) URL and a key of the caller's tenant.

    Refused as a 422 naming the field (`body.callback_url` or `query.callback_url`), before
    anything is stored.
    """
    try:
        if wait and callback_url is not None:
            raise InvalidRequestError("callback_url", "is for queued submissions: add wait=false")
        check_callback_url(callback_url)
        require_callback_secret(app.settings, tenant, callback_url)
    except InvalidRequestError as exc:
        problem = str(exc).removeprefix(f"{exc.field} ")
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": (where, "callback_url"),
                    "msg": problem,
                    "input": callback_url,
                }
            ]
        ) from exc


def _submission_route(
    path: str, *codes: int, only: dict[int, tuple[str, ...]]
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A route that evaluates and closes a session: its report (200), or queued (202).

    Each answers 401/404/409/422/502 besides `codes`; `only` narrows the examples.
    """
    return router.post(
        path,
        response_model=ReportOut | QueuedOut,
        tags=["sessions"],
        responses=submission_responses(401, 404, 409, 422, 502, *codes, only=only),
    )


@_submission_route(
    "/sessions/{session_id}/submit",
    only={409: ("ended", "not_waiting"), 422: ("session_id", "query", "callback_url")},
)
async def submit(
    session_id: uuid.UUID,
    app: AppDep,
    caller: TenantDep,
    response: Response,
    reevaluate: bool = False,
    wait: WaitQuery = True,
    callback_url: CallbackQuery = None,
) -> ReportOut | QueuedOut:
    """Evaluate what is pending and close the session. Idempotent once closed.

    With `wait=false` the evaluation is queued for a worker and 202 returns at once; a
    session already closed queues nothing (202, `job_id` null, its final status).
    """
    _check_callback(app, caller.tenant, wait, callback_url, "query")
    if not wait:
        queued = await app.interviews.queue_submit(
            session_id, reevaluate=reevaluate, callback_url=callback_url, tenant=caller.tenant
        )
        return _queued(queued, response)
    report = await app.interviews.submit(session_id, reevaluate=reevaluate, tenant=caller.tenant)
    return _report_out(report)


@_submission_route(
    "/submissions",
    413,
    only={409: ("ended", "conflict"), 422: ("field", "nul", "json", "query", "callback_url")},
)
async def submit_transcript(
    body: SubmitTranscript,
    app: AppDep,
    caller: TenantDep,
    response: Response,
    wait: WaitQuery = True,
) -> ReportOut | QueuedOut:
    """Store a complete transcript, evaluate all turns and the flow in parallel, close.

    With `wait=false` the transcript and its evaluation job are stored in one transaction
    and 202 returns at once. A `session_id` of another tenant is 404, as an unknown one
    would be for a re-submission.
    """
    _check_callback(app, caller.tenant, wait, body.callback_url, "body")
    submission = as_submission(body)
    if not wait:
        queued = await app.interviews.queue_transcript(submission, tenant=caller.tenant)
        return _queued(queued, response)
    return _report_out(await app.interviews.submit_transcript(submission, tenant=caller.tenant))


@router.get(
    "/sessions/{session_id}/report",
    response_model=ReportOut,
    tags=["sessions"],
    responses=error_responses(401, 404, 422, only={422: ("session_id",)}),
)
async def report(session_id: uuid.UUID, app: AppDep, caller: TenantDep) -> ReportOut:
    """Transcript, per-turn evaluations, holistic evaluation."""
    return _report_out(await app.interviews.report(session_id, tenant=caller.tenant))


@router.get(
    "/sessions/{session_id}/evaluations",
    response_model=list[EvaluationOut],
    tags=["sessions"],
    responses=error_responses(401, 404, 422, only={422: ("session_id", "query")}),
)
async def evaluations(
    session_id: uuid.UUID,
    app: AppDep,
    caller: TenantDep,
    evaluation_type: EvaluationType | None = None,
) -> list[EvaluationOut]:
    """The stored evaluations of a session, optionally of one type."""
    storage = app.services.storage
    await storage.sessions.get_session(session_id, tenant=caller.tenant)
    rows = await storage.evaluations.list_evaluations(session_id, evaluation_type)
    return [
        EvaluationOut(
            id=row.id,
            turn=row.turn,
            evaluation_type=row.evaluation_type.value,
            details=row.details,
            created_at=row.created_at.isoformat(),
            updated_at=row.updated_at.isoformat(),
        )
        for row in rows
    ]


QueryText = Annotated[
    str,
    Query(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description="Text to search for.",
        json_schema_extra=NONBLANK_TEXT_SCHEMA,
    ),
    AfterValidator(nonblank),
]


@router.get(
    "/questions/similar",
    response_model=list[SimilarQuestionOut],
    tags=["questions"],
    responses=error_responses(401, 422, only={422: ("query",)}),
)
async def similar_questions(
    app: AppDep,
    caller: TenantDep,
    text: QueryText,
    k: Annotated[int, Query(ge=1, le=50)] = 5,
    position: Position | None = None,
    language: Language | None = None,
) -> list[SimilarQuestionOut]:
    """Bank questions nearest to `text` by cosine distance (pgvector HNSW)."""
    hits = await app.services.storage.questions.similar(
        text,
        k=k,
        position=position.value if position else None,
        language=language.value if language else None,
    )
    return [SimilarQuestionOut.model_validate(dataclasses.asdict(hit)) for hit in hits]
