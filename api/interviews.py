"""The interview facade shared by the HTTP API, the CLI and Python callers.

It translates "start / answer / submit / report" into graph runs and into reads of the
storage services. It holds no state of its own: everything durable is in PostgreSQL. Four
rules make an interview impossible to break from outside:

- Validate first. Every request is checked in full (`api.validation`) before any graph run
  or write; a rejected request changes nothing (no session row, no message, no checkpoint).
- One writer per session. Every run that changes a session holds the session's advisory lock
  (`storage.locks`), so concurrent answers or submissions of one session run one at a time
  and each pending evaluation is judged once.
- Interviews and submissions are kept apart. An interview is the checkpointed thread
  `thread_id = session id`; submissions run on a graph without a checkpointer (every input
  is in the database, every write is idempotent), so a submission can never overwrite the
  state of a live interview, and `/submissions` refuses an interview's session outright.
- The database has the last word. A session with `ended_at` set is `completed` (it has a
  HOLISTIC_FLOW) or `abandoned` (stopped before any answer), whatever its checkpoint says; a
  run that died mid-way (pending tasks, no interrupt) is continued on the next read or answer.
  An open session's status comes from its latest background job: `queued`, `evaluating`
  or `failed`.

Queued submissions (`queue_submit`, `queue_transcript`, `queue_transcripts`) store what the
job needs and defer it in one transaction; the job (`api.jobs`) then calls `submit`, the
same path as the synchronous routes, under the same session lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot

from api.validation import (
    InvalidRequestError,
    check_answer,
    check_callback_url,
    check_flag,
    check_max_turns,
    check_profile,
    check_run,
    check_session_id,
    check_transcript,
)
from graph.context import Context
from graph.graph import build_graph
from graph.services import Services, use_services
from graph.state import InputState, InterviewState, TranscriptItem, TurnScore
from storage.errors import (
    SessionEndedError,
    SessionNotFoundError,
    StorageError,
    TurnConflictError,
)
from storage.locks import SessionLocks
from storage.models import EvaluationType
from storage.queue import QueuedTranscript
from storage.sessions import TranscriptTurn
from storage.settings import DEFAULT_TENANT
from storage.views import EvaluationView, SessionView, TurnView

Graph = CompiledStateGraph[InterviewState, Context, InputState, InterviewState]

#: Without `turn`, an answer equal to the previous turn's, sent within this many seconds of
#: it, is taken for a client's retry (its response was lost) rather than a new answer.
RESEND_WINDOW_S = 60.0


class NoPendingQuestionError(RuntimeError):
    """An answer arrived but the session is not waiting for one."""


class SessionKindError(RuntimeError):
    """The request does not fit the session: e.g. a transcript for a live interview."""


@dataclass(frozen=True)
class PendingQuestion:
    """The question the candidate must answer next."""

    turn: int
    max_turns: int
    question: str
    category: str | None


@dataclass(frozen=True)
class InterviewStep:
    """Where an interview stands after a call."""

    session_id: uuid.UUID
    status: str
    question: PendingQuestion | None
    last_evaluation: TurnScore | None = None
    holistic_score: float | None = None


@dataclass(frozen=True)
class TurnReport:
    """One turn with its TURN_EVAL details (None while not evaluated).

    `emotion` is the seed 000 §4.2 summary sent with the answer (None: none was sent).
    """

    turn: int
    question: str
    answer: str | None
    evaluation: dict[str, Any] | None
    emotion: dict[str, Any] | None = None


@dataclass(frozen=True)
class SessionReport:
    """A session's transcript and evaluations, as stored.

    `status` is `completed` (closed, every answer evaluated), `abandoned` (ended before any
    answer: the questions asked are listed, nothing is scored) or `open`.
    """

    session_id: uuid.UUID
    participant_id: str
    position: str
    language: str
    started_at: str
    ended_at: str | None
    turns: list[TurnReport]
    holistic: dict[str, Any] | None
    turn_score_mean: float | None
    flags: list[str] = field(default_factory=list)
    status: str = "open"
    run: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    job_id: int | None = None
    attempts: int | None = None
    error: str | None = None
    callback: dict[str, Any] | None = None
    emotion: dict[str, Any] | None = None
    """Means over the answered turns with data, set when the session closed (seed 000 §4.2)."""


@dataclass(frozen=True)
class QueuedSubmission:
    """A submission accepted for background evaluation.

    `job_id` is None when there was nothing to queue: the session was already closed
    (`status` is then `completed` or `abandoned`).
    """

    session_id: uuid.UUID
    job_id: int | None
    status: str = "queued"


@dataclass(frozen=True)
class RefusedSubmission:
    """A submission of a batch refused on its own (`queue_transcripts` goes on with the rest).

    Only re-submissions of stored sessions can be refused this late: a different transcript,
    an interview's session, another tenant's (new submissions are all validated up front).
    """

    session_id: uuid.UUID
    error: StorageError


@dataclass(frozen=True)
class TranscriptSubmission:
    """One complete transcript to evaluate: the facade's one submission shape.

    Built from a validated HTTP/CLI record by `api.batch.as_submission`, and taken alike by
    `submit_transcript` (evaluate now) and `queue_transcript(s)` (store and queue).
    """

    participant_id: str
    position: str
    language: str
    transcript: Sequence[TranscriptItem]
    session_id: uuid.UUID | None = None
    exam_id: str | None = None
    reevaluate: bool = False
    callback_url: str | None = None
    run: str | None = None
    tags: dict[str, str] | None = None


def _config(session_id: uuid.UUID, tenant: str = DEFAULT_TENANT) -> RunnableConfig:
    # `tenant` is read by open_session when it creates the session row.
    return {"configurable": {"thread_id": str(session_id), "tenant": tenant}}


def ended_status(evaluations: Sequence[EvaluationView]) -> str:
    """Status of an ended session: `completed` with a HOLISTIC_FLOW, else `abandoned`."""
    kinds = {e.evaluation_type for e in evaluations}
    return "completed" if EvaluationType.HOLISTIC_FLOW in kinds else "abandoned"


def _stranded(snapshot: StateSnapshot) -> bool:
    """Whether the last run died mid-way: work pending, but no interrupt waiting."""
    return bool(snapshot.values) and bool(snapshot.next) and not snapshot.interrupts


def _recent(turn: TurnView) -> bool:
    """Whether `turn` was answered within `RESEND_WINDOW_S` (a client's retry, not a reply)."""
    if turn.answered_at is None:
        return False
    age = datetime.now(UTC) - turn.answered_at
    return age.total_seconds() < RESEND_WINDOW_S


def _last_answered(transcript: Sequence[TurnView]) -> TurnView | None:
    answered = [t for t in transcript if t.answer_text is not None]
    return answered[-1] if answered else None


class InterviewService:
    """Runs the graph for one application (API process, CLI run)."""

    def __init__(self, graph: Graph, services: Services) -> None:
        """`graph` is compiled with the PostgreSQL checkpointer (interviews)."""
        self._graph = graph
        # Submissions need no checkpoint: their inputs are stored and their writes idempotent.
        self._submissions: Graph = build_graph()
        self._services = services
        self._locks = SessionLocks(services.storage.db)

    # ------------------------------------------------------------------ graph runs
    async def _run(
        self,
        payload: dict[str, Any] | Command[Any] | None,
        session_id: uuid.UUID,
        tenant: str = DEFAULT_TENANT,
    ) -> dict[str, Any]:
        graph_input: Any = payload  # a partial state dict; the graph fills in the defaults
        with use_services(self._services):  # built by the caller from its settings
            result: dict[str, Any] = await self._graph.ainvoke(
                graph_input, _config(session_id, tenant)
            )
        return result

    async def _run_submission(self, payload: dict[str, Any], tenant: str) -> None:
        graph_input: Any = payload
        config: RunnableConfig = {"configurable": {"tenant": tenant}}
        with use_services(self._services):
            await self._submissions.ainvoke(graph_input, config)

    async def check_owner(
        self, session_id: uuid.UUID, tenant: str, *, missing_ok: bool = False
    ) -> SessionView | None:
        """The session if `tenant` owns it; `SessionNotFoundError` for another tenant's.

        Every call naming an existing session passes here before any graph run, so another
        tenant can neither read nor change it (nor write a checkpoint on its thread).
        With `missing_ok`, an unknown session is None instead of an error.
        """
        try:
            session = await self._services.storage.sessions.get_session(session_id)
        except SessionNotFoundError:
            if missing_ok:
                return None
            raise
        if session.tenant != tenant:
            raise SessionNotFoundError(session_id)  # the very error of an unknown session
        return session

    async def _owned(self, session_id: uuid.UUID, tenant: str) -> SessionView:
        session = await self.check_owner(session_id, tenant)
        assert session is not None
        return session

    async def _snapshot(self, session_id: uuid.UUID) -> StateSnapshot:
        return await self._graph.aget_state(_config(session_id))

    async def _is_interview(self, session_id: uuid.UUID) -> bool:
        snapshot = await self._snapshot(session_id)
        return bool(snapshot.values) and snapshot.values.get("mode") == "interview"

    # ------------------------------------------------------------------ steps
    @staticmethod
    def _step(session_id: uuid.UUID, result: dict[str, Any]) -> InterviewStep:
        interrupts = result.get("__interrupt__") or []
        question = None
        if interrupts:
            value = interrupts[0].value
            question = PendingQuestion(
                turn=value["turn"],
                max_turns=value["max_turns"],
                question=value["question"],
                category=value.get("category"),
            )
        evaluations = result.get("turn_evaluations") or []
        holistic = result.get("holistic")
        return InterviewStep(
            session_id=session_id,
            status="awaiting_answer" if question else str(result.get("status", "unknown")),
            question=question,
            last_evaluation=evaluations[-1] if evaluations else None,
            holistic_score=holistic["score"] if holistic else None,
        )

    async def _ended_step(self, session: SessionView) -> InterviewStep:
        """The step of an ended session, read from the database."""
        evaluations = await self._services.storage.evaluations.list_evaluations(session.id)
        turns = [e for e in evaluations if e.evaluation_type is EvaluationType.TURN_EVAL]
        holistic = next(
            (e for e in evaluations if e.evaluation_type is EvaluationType.HOLISTIC_FLOW), None
        )
        last = None
        if turns and turns[-1].turn is not None:
            details = turns[-1].details
            last = TurnScore(
                turn=turns[-1].turn,
                score=float(details["score"]),
                analysis=str(details["analysis"]),
                flags=list(details.get("flags", [])),
            )
        return InterviewStep(
            session_id=session.id,
            status=ended_status(evaluations),
            question=None,
            last_evaluation=last,
            holistic_score=float(holistic.details["score"]) if holistic else None,
        )

    async def _stored_answer(self, session_id: uuid.UUID, snapshot: StateSnapshot) -> str | None:
        """The stored answer of the question the checkpoint still shows as waiting, if any.

        The node persists an answer before its task's result reaches the checkpoint; a crash
        in between leaves the interrupt looking pending although its answer is in the
        database. That answer was accepted, so it is the turn's answer.
        """
        if not snapshot.interrupts:
            return None
        turn = snapshot.interrupts[0].value.get("turn")
        transcript = await self._services.storage.sessions.get_transcript(session_id)
        stored = next((t for t in transcript if t.turn == turn), None)
        return stored.answer_text if stored is not None else None

    async def _current_step(self, session_id: uuid.UUID) -> InterviewStep:
        """The step as stored now (caller holds the session lock): continue a dead run."""
        session = await self._services.storage.sessions.get_session(session_id)
        if session.is_ended:
            return await self._ended_step(session)
        snapshot = await self._snapshot(session_id)
        if not snapshot.values:
            raise NoPendingQuestionError(f"session {session_id} is not an interview in progress")
        stored_answer = await self._stored_answer(session_id, snapshot)
        if _stranded(snapshot) or stored_answer is not None:
            # The last run died mid-way (a crash, a dropped process): finish what it started.
            # Every node is idempotent, so the stored answer is evaluated once. LangGraph
            # resumes with the value it had saved; without one, with the stored answer.
            result = await self._run(None, session_id)
            waiting = result.get("__interrupt__") or []
            if (
                stored_answer is not None
                and waiting
                and (waiting[0].value.get("turn") == snapshot.interrupts[0].value.get("turn"))
            ):
                result = await self._run(Command(resume=stored_answer), session_id)
            session = await self._services.storage.sessions.get_session(session_id)
            if session.is_ended:
                return await self._ended_step(session)
            return self._step(session_id, result)
        values = dict(snapshot.values)
        values["__interrupt__"] = list(snapshot.interrupts)
        return self._step(session_id, values)

    # ------------------------------------------------------------------ interviews
    async def start(
        self,
        *,
        participant_id: str,
        position: str,
        language: str,
        max_turns: int,
        exam_id: str | None = None,
        run: str | None = None,
        tags: dict[str, str] | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> InterviewStep:
        """Open a new session of `tenant` and return its first question.

        `run` and `tags` are stored in the session's metadata (exports filter by them).
        """
        check_profile(participant_id, position, language, exam_id)
        check_max_turns(max_turns)
        metadata = check_run(run, tags)
        session_id = uuid.uuid4()
        result = await self._run(
            {
                "session_id": str(session_id),
                "participant_id": participant_id,
                "exam_id": exam_id,
                "position": position,
                "language": language,
                "max_turns": max_turns,
                "mode": "interview",
                "metadata": metadata,
            },
            session_id,
            tenant,
        )
        return self._step(session_id, result)

    async def pending(self, session_id: uuid.UUID, tenant: str = DEFAULT_TENANT) -> InterviewStep:
        """The session's current step; a run that died mid-way is continued first."""
        session_id = check_session_id(session_id)
        session = await self._owned(session_id, tenant)  # 404
        if session.is_ended:
            return await self._ended_step(session)
        snapshot = await self._snapshot(session_id)
        if snapshot.interrupts and await self._stored_answer(session_id, snapshot) is None:
            values = dict(snapshot.values)
            values["__interrupt__"] = list(snapshot.interrupts)
            return self._step(session_id, values)
        async with self._locks.hold(session_id):  # a run in flight or a dead one
            return await self._current_step(session_id)

    async def answer(
        self,
        session_id: uuid.UUID,
        answer: str | None,
        stop: bool = False,
        *,
        turn: int | None = None,
        tenant: str = DEFAULT_TENANT,
        emotion: dict[str, Any] | None = None,
    ) -> InterviewStep:
        """Resume the interview with the candidate's answer (and/or a stop).

        `emotion` is the platform's emotion summary of the answer (seed 000 §4.2); it is
        stored with the answer and never judged. A re-send without it is still a re-send;
        with a different one it is a `TurnConflictError`.

        Idempotent on (session, turn, answer): re-sending the answer of a turn already
        answered (after a dropped connection) returns the current step without changing
        anything; a different answer for an answered turn is a `TurnConflictError`. Without
        `turn`, an answer equal to the previous turn's, sent within `RESEND_WINDOW_S` of it,
        counts as such a re-send (send `turn` to give one answer to two questions in a row).
        """
        session_id = check_session_id(session_id)
        answer, stop, emotion = check_answer(answer, stop, emotion)
        if turn is not None and (isinstance(turn, bool) or not isinstance(turn, int) or turn < 1):
            raise InvalidRequestError("turn", "must be an integer >= 1")
        await self._owned(session_id, tenant)
        async with self._locks.hold(session_id):
            step = await self._current_step(session_id)
            transcript = await self._services.storage.sessions.get_transcript(session_id)
            if step.question is not None and turn in (None, step.question.turn):
                previous = _last_answered(transcript)
                resent = (
                    turn is None
                    and not stop
                    and answer is not None
                    and previous is not None
                    and previous.answer_text == answer
                    and emotion in (None, previous.emotion)
                    and previous.turn == step.question.turn - 1
                    and _recent(previous)
                )
                if not resent:
                    return await self._resume(session_id, answer, stop, emotion)
                return step
            return self._replayed(session_id, step, transcript, answer, turn, emotion)

    def _replayed(
        self,
        session_id: uuid.UUID,
        step: InterviewStep,
        transcript: Sequence[TurnView],
        answer: str | None,
        turn: int | None,
        emotion: dict[str, Any] | None,
    ) -> InterviewStep:
        """A request for a turn that is not pending: a re-send (same step) or a conflict."""
        target = (
            next((t for t in transcript if t.turn == turn), None)
            if turn is not None
            else _last_answered(transcript)
        )
        if answer is None:  # a bare stop of an interview that has already ended
            if step.question is None and step.status in {"completed", "abandoned"}:
                return step
        elif target is not None and target.answer_text is not None:
            if target.answer_text != answer:
                raise TurnConflictError(
                    f"turn {target.turn} of session {session_id} already has a different answer"
                )
            if emotion not in (None, target.emotion):
                raise TurnConflictError(
                    f"turn {target.turn} of session {session_id} already has a different emotion"
                )
            return step
        if step.status in {"completed", "abandoned"}:
            raise SessionEndedError(session_id)
        if turn is not None and step.question is not None:
            raise NoPendingQuestionError(
                f"session {session_id} waits for the answer of turn {step.question.turn}, "
                f"not {turn}"
            )
        raise NoPendingQuestionError(f"session {session_id} is not waiting for an answer")

    async def _resume(
        self,
        session_id: uuid.UUID,
        answer: str | None,
        stop: bool,
        emotion: dict[str, Any] | None,
    ) -> InterviewStep:
        resume: dict[str, Any] = {"stop": stop}
        if answer is not None:
            resume["answer"] = answer
        if emotion is not None:
            resume["emotion"] = emotion
        result = await self._run(Command(resume=resume), session_id)
        interrupts = result.get("__interrupt__") or []
        if interrupts and interrupts[0].value.get("error"):
            # Refused inside the node (only the database could tell): the question is
            # pending again, unchanged, and the interview stays usable.
            raise InvalidRequestError("answer", str(interrupts[0].value["error"]))
        return self._step(session_id, result)

    # ------------------------------------------------------------------ submissions
    async def submit(
        self, session_id: uuid.UUID, reevaluate: bool = False, tenant: str = DEFAULT_TENANT
    ) -> SessionReport:
        """Evaluate whatever is pending for an existing session and close it.

        Single-flight and idempotent: concurrent calls run one at a time; the first
        evaluates, the others find the session closed and return the same report. An
        interview with no answered turn ends as `abandoned` (nothing to evaluate).
        """
        session_id = check_session_id(session_id)
        check_flag("reevaluate", reevaluate)
        storage = self._services.storage
        if (await self._owned(session_id, tenant)).is_ended:
            return await self.report(session_id, tenant)  # closed for good: no lock needed
        async with self._locks.hold(session_id):
            session = await storage.sessions.get_session(session_id)
            if not session.is_ended:
                transcript = await storage.sessions.get_transcript(session_id)
                if _last_answered(transcript) is None:
                    await storage.evaluations.abandon_session(session_id)
                else:
                    await self._run_submission(
                        {
                            "session_id": str(session_id),
                            "mode": "submission",
                            "position": session.position,
                            "language": session.language,
                            "participant_id": session.participant_id,
                            "max_turns": session.max_turns,
                            "reevaluate": reevaluate,
                        },
                        tenant,
                    )
        return await self.report(session_id, tenant)

    async def submit_transcript(
        self, submission: TranscriptSubmission, *, tenant: str = DEFAULT_TENANT
    ) -> SessionReport:
        """Store a complete transcript, evaluate every turn and the flow, close the session.

        With the `session_id` of an earlier submission and the same transcript, the stored
        report is returned (idempotent; an open one, e.g. after a judge failure, is
        completed). A different transcript or profile, or the session of an interview, is
        refused (`TurnConflictError`, `SessionEndedError`, `SessionKindError`) and nothing
        is changed. `run` and `tags` are stored with a new session (exports filter by them).
        The evaluation is done when this returns: `callback_url` is for the queued paths.
        """
        items, metadata = self._check_request(submission)
        session_id = submission.session_id
        sid = uuid.uuid4() if session_id is None else check_session_id(session_id)
        async with self._locks.hold(sid):
            if session_id is not None:
                existing = await self._existing_submission(sid, submission, items, tenant)
                if existing is not None and existing.is_ended:
                    return await self.report(sid, tenant)
            await self._run_submission(
                {
                    "session_id": str(sid),
                    "participant_id": submission.participant_id,
                    "exam_id": submission.exam_id,
                    "position": submission.position,
                    "language": submission.language,
                    "max_turns": len(items),
                    "mode": "submission",
                    "transcript": items,
                    "reevaluate": submission.reevaluate,
                    "metadata": metadata,
                },
                tenant,
            )
        # A new session (its id made here, unknown to anyone before this returns) cannot have
        # a background job: its report needs no job lookup.
        return await self.report(sid, tenant, jobs=session_id is not None)

    # ------------------------------------------------------------------ queued submissions
    async def queue_submit(
        self,
        session_id: uuid.UUID,
        reevaluate: bool = False,
        *,
        callback_url: str | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> QueuedSubmission:
        """`submit` in the background: defer the session's evaluation job and return at once.

        The job carries `tenant` and runs `submit` as that tenant. A closed session queues
        nothing; a session whose job is waiting or running gets that job back (one job per
        session at a time). A session whose last job failed gets a new one: resubmitting is
        how a failed evaluation is tried again. Another tenant's session is 404.
        """
        session_id = check_session_id(session_id)
        check_flag("reevaluate", reevaluate)
        callback_url = check_callback_url(callback_url)
        if (await self._owned(session_id, tenant)).is_ended:
            return QueuedSubmission(
                session_id, None, (await self.report(session_id, tenant)).status
            )
        async with self._locks.hold(session_id):
            job = await self._services.storage.jobs.enqueue_session(
                session_id, reevaluate=reevaluate, callback_url=callback_url, tenant=tenant
            )
        return QueuedSubmission(session_id, job.id, job.status)

    async def queue_transcript(
        self, submission: TranscriptSubmission, *, tenant: str = DEFAULT_TENANT
    ) -> QueuedSubmission:
        """`submit_transcript` in the background: store the transcript and its job together.

        Validated exactly like `submit_transcript` (same errors, nothing stored on refusal);
        re-submitting a session follows the same rules (a closed one queues nothing, another
        tenant's is 404, an interview's is refused).
        """
        item = self.check_submission(submission, tenant)
        async with self._locks.hold(item.session_id):
            if submission.session_id is not None:
                existing = await self._existing_submission(
                    item.session_id, submission, submission.transcript, tenant
                )
                if existing is not None and existing.is_ended:
                    report = await self.report(item.session_id, tenant)
                    return QueuedSubmission(item.session_id, None, report.status)
            (job,) = await self._services.storage.jobs.enqueue_transcripts([item])
        return QueuedSubmission(item.session_id, job.id, job.status)

    async def queue_transcripts(
        self, submissions: Sequence[TranscriptSubmission], *, tenant: str = DEFAULT_TENANT
    ) -> list[QueuedSubmission | RefusedSubmission]:
        """Queue many submissions at once: every one validated, then one transaction.

        The bulk path of `turnjudge evaluate --queue`. Submissions naming a session that
        already exists take `queue_transcript`'s checks one by one, and one refused there is
        returned as a `RefusedSubmission` while the others go on; the rest (new ids, fresh or
        derived from a run name) are stored with their jobs in one statement per table.
        """
        checked = [self.check_submission(submission, tenant) for submission in submissions]
        named = [
            item.session_id
            for s, item in zip(submissions, checked, strict=True)
            if s.session_id is not None
        ]
        existing = await self._services.storage.sessions.existing_ids(named)
        results: dict[uuid.UUID, QueuedSubmission | RefusedSubmission] = {}
        fresh = []
        for submission, item in zip(submissions, checked, strict=True):
            if item.session_id in existing:
                try:
                    results[item.session_id] = await self.queue_transcript(
                        submission, tenant=tenant
                    )
                except StorageError as error:
                    results[item.session_id] = RefusedSubmission(item.session_id, error)
            else:
                fresh.append(item)
        jobs = await self._services.storage.jobs.enqueue_transcripts(fresh)
        for item, job in zip(fresh, jobs, strict=True):
            results[item.session_id] = QueuedSubmission(item.session_id, job.id, job.status)
        return [results[item.session_id] for item in checked]

    @staticmethod
    def check_submission(
        submission: TranscriptSubmission, tenant: str = DEFAULT_TENANT
    ) -> QueuedTranscript:
        """Validate a submission as `submit_transcript` does; give it its session id."""
        items, metadata = InterviewService._check_request(submission)
        callback_url = check_callback_url(submission.callback_url)
        sid = (
            uuid.uuid4()
            if submission.session_id is None
            else check_session_id(submission.session_id)
        )
        return QueuedTranscript(
            session_id=sid,
            participant_id=submission.participant_id,
            position=submission.position,
            language=submission.language,
            exam_id=submission.exam_id,
            turns=[
                TranscriptTurn(item["question"], item["answer"], emotion=item.get("emotion"))
                for item in items
            ],
            tenant=tenant,
            metadata=metadata,
            reevaluate=submission.reevaluate,
            callback_url=callback_url,
        )

    @staticmethod
    def _check_request(
        submission: TranscriptSubmission,
    ) -> tuple[list[TranscriptItem], dict[str, Any]]:
        """The checks every submission path shares: the transcript's items and run metadata."""
        check_profile(
            submission.participant_id,
            submission.position,
            submission.language,
            submission.exam_id,
        )
        items = check_transcript(submission.transcript)
        check_flag("reevaluate", submission.reevaluate)
        return items, check_run(submission.run, submission.tags)

    async def _existing_submission(
        self,
        session_id: uuid.UUID,
        submission: TranscriptSubmission,
        items: Sequence[TranscriptItem],
        tenant: str,
    ) -> SessionView | None:
        """The stored session this re-submission targets, if its request (`items`) matches it."""
        storage = self._services.storage
        session = await self.check_owner(session_id, tenant, missing_ok=True)
        if session is None:
            return None
        if await self._is_interview(session_id):
            raise SessionKindError(
                f"session {session_id} is an interview; answer it or use "
                f"POST /sessions/{session_id}/submit to end it"
            )
        stored = await storage.sessions.get_transcript(session_id)
        same_profile = (
            session.participant_id,
            session.position,
            session.language,
            session.exam_id,
        ) == (
            submission.participant_id,
            submission.position,
            submission.language,
            submission.exam_id,
        )
        mismatch = next(
            (
                index
                for index, view in enumerate(stored)
                if index >= len(items)
                or view.question_text != items[index]["question"]
                or (
                    view.answer_text is not None
                    and (view.answer_text, view.emotion)
                    != (items[index]["answer"], items[index].get("emotion"))
                )
            ),
            None,
        )
        if session.is_ended and (
            not same_profile or mismatch is not None or len(stored) != len(items)
        ):
            raise SessionEndedError(session_id)
        if not same_profile:
            raise TurnConflictError(
                f"session {session_id} was submitted with a different participant, position, "
                "language or exam"
            )
        if mismatch is not None:
            raise TurnConflictError(
                f"turn {mismatch + 1} of session {session_id} differs from the stored transcript"
            )
        return session

    # ------------------------------------------------------------------ reports
    async def report(
        self, session_id: uuid.UUID, tenant: str = DEFAULT_TENANT, *, jobs: bool = True
    ) -> SessionReport:
        """The stored transcript and evaluations of a session of `tenant`.

        `jobs=False` skips the background-job lookup (one transaction) for a session known
        to have none: one `submit_transcript` has just created.
        """
        session_id = check_session_id(session_id)
        storage = self._services.storage
        record = await storage.session_record(session_id, tenant=tenant)  # one transaction
        session, transcript, evaluations = record.session, record.turns, record.evaluations
        by_turn = {
            e.turn: e.details for e in evaluations if e.evaluation_type is EvaluationType.TURN_EVAL
        }
        holistic = next(
            (e.details for e in evaluations if e.evaluation_type is EvaluationType.HOLISTIC_FLOW),
            None,
        )
        scores = [float(details["score"]) for details in by_turn.values()]
        flags = sorted(
            {flag for details in by_turn.values() for flag in details.get("flags", [])}
            | set((holistic or {}).get("flags", []))
        )
        job = await storage.jobs.latest_job(session_id) if jobs else None
        status = ended_status(evaluations) if session.is_ended else "open"
        if not session.is_ended and job is not None:
            status = job.open_status or status
        return SessionReport(
            session_id=session.id,
            participant_id=session.participant_id,
            position=session.position,
            language=session.language,
            started_at=session.started_at.isoformat(),
            ended_at=session.ended_at.isoformat() if session.ended_at else None,
            turns=[
                TurnReport(
                    turn=t.turn,
                    question=t.question_text,
                    answer=t.answer_text,
                    evaluation=by_turn.get(t.turn),
                    emotion=t.emotion,
                )
                for t in transcript
            ],
            holistic=holistic,
            turn_score_mean=round(sum(scores) / len(scores), 2) if scores else None,
            flags=flags,
            status=status,
            run=session.metadata.get("run"),
            tags=dict(session.metadata.get("tags") or {}),
            job_id=job.id if job is not None else None,
            attempts=job.attempts + (job.status == "doing") if job is not None else None,
            error=job.error if status == "failed" and job is not None else None,
            callback=_callback_record(session.metadata),
            emotion=session.emotion_summary,
        )


def _callback_record(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The callback attempts recorded with a session (`JobQueue.record_callback_attempt`)."""
    record = metadata.get("callback")
    return dict(record) if isinstance(record, dict) else None
