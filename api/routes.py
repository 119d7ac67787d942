"""HTTP routes: thin translations between JSON and the interview facade / services."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status

from api.batch import as_submission
from api.callbacks import require_callback_secret
from api.deps import AppDep, require_api_key
from api.interviews import InterviewStep, QueuedSubmission, SessionReport
from api.schemas import (
    AnswerIn,
    ErrorOut,
    EvaluationOut,
    HealthOut,
    InterviewStepOut,
    QueuedOut,
    ReportOut,
    SimilarQuestionOut,
    StartInterview,
    SubmitTranscript,
)
from api.validation import InvalidRequestError
from storage.models import EvaluationType

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 404, 409, 422, 502)
}

router = APIRouter(dependencies=[Depends(require_api_key)], responses=ERRORS)
health_router = APIRouter()


def _step_out(step: InterviewStep) -> InterviewStepOut:
    return InterviewStepOut.model_validate(dataclasses.asdict(step))


def _report_out(report: SessionReport) -> ReportOut:
    return ReportOut.model_validate(dataclasses.asdict(report))


@health_router.get("/health", response_model=HealthOut, tags=["health"])
async def health(app: AppDep) -> HealthOut:
    """Liveness: the database answers and the judge is configured."""
    count = await app.services.storage.questions.count()
    return HealthOut(status="ok", database="ok", judge=app.services.judge.kind, questions=count)


@router.post("/interviews", response_model=InterviewStepOut,
             status_code=status.HTTP_201_CREATED, tags=["interviews"])
async def start_interview(body: StartInterview, app: AppDep) -> InterviewStepOut:
    """Open a session and get the first question."""
    step = await app.interviews.start(
        participant_id=body.participant_id, position=body.position, language=body.language,
        max_turns=body.max_turns, exam_id=body.exam_id,
    )
    return _step_out(step)


@router.get("/interviews/{session_id}", response_model=InterviewStepOut, tags=["interviews"])
async def get_interview(session_id: uuid.UUID, app: AppDep) -> InterviewStepOut:
    """The question currently awaiting an answer (or the final status)."""
    return _step_out(await app.interviews.pending(session_id))


@router.post("/interviews/{session_id}/answers", response_model=InterviewStepOut,
             tags=["interviews"])
async def answer(
    session_id: uuid.UUID, body: AnswerIn, app: AppDep,
    turn: Annotated[int | None, Query(ge=1, le=1_000, description=(
        "The turn answered (as shown with the question): re-sending the same answer for "
        "it returns the current step; a different one is a 409."))] = None,
) -> InterviewStepOut:
    """Answer the pending question; the answer is stored before this returns."""
    if body.answer is None and not body.stop:
        raise HTTPException(status_code=422, detail="answer is required unless stop is true")
    return _step_out(
        await app.interviews.answer(session_id, body.answer, body.stop, turn=turn)
    )


WaitQuery = Annotated[bool, Query(description=(
    "false: store, queue the evaluation for a worker (`turnjudge worker`) and answer 202 at "
    "once; follow it with GET /sessions/{id}/report (status queued, evaluating, completed, "
    "failed). true: evaluate in the request."))]
#: The 202 answer of `wait=false`, documented next to the 200 report.
QUEUED: dict[int | str, dict[str, Any]] = {
    202: {"model": QueuedOut, "description": "Queued for a worker (wait=false)"}
}


def _queued(queued: QueuedSubmission, response: Response) -> QueuedOut:
    response.status_code = status.HTTP_202_ACCEPTED
    return QueuedOut.model_validate(dataclasses.asdict(queued))


def _no_callback_when_waiting(wait: bool, callback_url: str | None) -> None:
    if wait and callback_url is not None:
        raise InvalidRequestError("callback_url", "is for queued submissions: add wait=false")


@router.post("/sessions/{session_id}/submit", response_model=ReportOut | QueuedOut,
             tags=["sessions"], responses=QUEUED)
async def submit(
    session_id: uuid.UUID, app: AppDep, response: Response, reevaluate: bool = False,
    wait: WaitQuery = True,
    callback_url: Annotated[str | None, Query(max_length=2_000, description=(
        "With wait=false: http(s) URL POSTed a signed summary when the session completes "
        "or fails"))] = None,
) -> ReportOut | QueuedOut:
    """Evaluate what is pending and close the session. Idempotent once closed."""
    _no_callback_when_waiting(wait, callback_url)
    if not wait:
        require_callback_secret(app.settings, None, callback_url)
        queued = await app.interviews.queue_submit(
            session_id, reevaluate=reevaluate, callback_url=callback_url
        )
        return _queued(queued, response)
    return _report_out(await app.interviews.submit(session_id, reevaluate=reevaluate))


@router.post("/submissions", response_model=ReportOut | QueuedOut, tags=["sessions"],
             responses=QUEUED)
async def submit_transcript(
    body: SubmitTranscript, app: AppDep, response: Response, wait: WaitQuery = True
) -> ReportOut | QueuedOut:
    """Store a complete transcript, evaluate all turns and the flow in parallel, close."""
    _no_callback_when_waiting(wait, body.callback_url)
    if not wait:
        require_callback_secret(app.settings, None, body.callback_url)
        return _queued(await app.interviews.queue_transcript(as_submission(body)), response)
    return _report_out(await body.submit(app.interviews))


@router.get("/sessions/{session_id}/report", response_model=ReportOut, tags=["sessions"])
async def report(session_id: uuid.UUID, app: AppDep) -> ReportOut:
    """Transcript, per-turn evaluations, holistic evaluation."""
    return _report_out(await app.interviews.report(session_id))


@router.get("/sessions/{session_id}/evaluations", response_model=list[EvaluationOut],
            tags=["sessions"])
async def evaluations(
    session_id: uuid.UUID, app: AppDep, evaluation_type: EvaluationType | None = None
) -> list[EvaluationOut]:
    """The stored evaluations of a session, optionally of one type."""
    rows = await app.services.storage.evaluations.list_evaluations(session_id, evaluation_type)
    return [
        EvaluationOut(
            id=row.id, turn=row.turn, evaluation_type=row.evaluation_type.value,
            details=row.details, created_at=row.created_at.isoformat(),
            updated_at=row.updated_at.isoformat(),
        )
        for row in rows
    ]


@router.get("/questions/similar", response_model=list[SimilarQuestionOut], tags=["questions"])
async def similar_questions(
    app: AppDep,
    text: Annotated[str, Query(min_length=1, max_length=2_000)],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
    position: str | None = None,
    language: str | None = None,
) -> list[SimilarQuestionOut]:
    """Bank questions nearest to `text` by cosine distance (pgvector HNSW)."""
    hits = await app.services.storage.questions.similar(
        text, k=k, position=position, language=language
    )
    return [SimilarQuestionOut.model_validate(dataclasses.asdict(hit)) for hit in hits]
