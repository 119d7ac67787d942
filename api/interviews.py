"""The interview facade shared by the HTTP API and the CLI.

It translates "start / answer / submit / report" into graph runs on a checkpointed graph
(thread_id = session id) and into reads of the storage services. It holds no state of its
own: everything durable is in PostgreSQL (checkpoints and the evaluation tables).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from graph.context import Context, Services
from graph.state import InterviewState, TranscriptItem, TurnScore
from storage.errors import SessionNotFoundError
from storage.models import EvaluationType
from storage.settings import DEFAULT_TENANT
from storage.views import SessionView


class NoPendingQuestionError(RuntimeError):
    """An answer arrived but the session is not waiting for one."""


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
    """One turn with its TURN_EVAL details (None while not evaluated)."""

    turn: int
    question: str
    answer: str | None
    evaluation: dict[str, Any] | None


@dataclass(frozen=True)
class SessionReport:
    """A session's transcript and evaluations, as stored."""

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


def _config(session_id: uuid.UUID, tenant: str = DEFAULT_TENANT) -> RunnableConfig:
    # `tenant` is read by open_session when it creates the session row.
    return {"configurable": {"thread_id": str(session_id), "tenant": tenant}}


class InterviewService:
    """Runs the checkpointed graph for one application (API process, CLI run)."""

    def __init__(
        self,
        graph: CompiledStateGraph[InterviewState, Context, InterviewState, InterviewState],
        services: Services,
    ) -> None:
        self._graph = graph
        self._services = services
        self._context = Context(
            storage=services.storage,
            judge=services.judge,
            question_generator=services.question_generator,
        )

    async def _run(self, payload: dict[str, Any] | Command[Any], session_id: uuid.UUID,
                   tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
        graph_input: Any = payload  # a partial state dict; the graph fills in the defaults
        result: dict[str, Any] = await self._graph.ainvoke(
            graph_input, _config(session_id, tenant), context=self._context
        )
        return result

    async def check_owner(self, session_id: uuid.UUID, tenant: str, *, missing_ok: bool = False
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

    @staticmethod
    def _step(session_id: uuid.UUID, result: dict[str, Any]) -> InterviewStep:
        interrupts = result.get("__interrupt__") or []
        question = None
        if interrupts:
            value = interrupts[0].value
            question = PendingQuestion(
                turn=value["turn"], max_turns=value["max_turns"], question=value["question"],
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

    async def start(
        self,
        *,
        participant_id: str,
        position: str,
        language: str,
        max_turns: int,
        exam_id: str | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> InterviewStep:
        """Open a new session of `tenant` and return its first question."""
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
            },
            session_id,
            tenant,
        )
        return self._step(session_id, result)

    async def pending(self, session_id: uuid.UUID, tenant: str = DEFAULT_TENANT
                      ) -> InterviewStep:
        """The session's current step, read from its checkpoint."""
        await self.check_owner(session_id, tenant)
        snapshot = await self._graph.aget_state(_config(session_id))
        if not snapshot.values:
            await self._services.storage.sessions.get_session(session_id)  # 404 if unknown
            raise NoPendingQuestionError(f"session {session_id} has no interview in progress")
        values = dict(snapshot.values)
        values["__interrupt__"] = list(snapshot.interrupts)
        return self._step(session_id, values)

    async def answer(self, session_id: uuid.UUID, answer: str | None, stop: bool = False,
                     tenant: str = DEFAULT_TENANT) -> InterviewStep:
        """Resume the interview with the candidate's answer (and/or a stop)."""
        await self.check_owner(session_id, tenant)
        snapshot = await self._graph.aget_state(_config(session_id))
        if not snapshot.interrupts:
            if not snapshot.values:
                await self._services.storage.sessions.get_session(session_id)
            raise NoPendingQuestionError(
                f"session {session_id} is not waiting for an answer"
            )
        resume: dict[str, Any] = {"stop": stop}
        if answer is not None:
            resume["answer"] = answer
        result = await self._run(Command(resume=resume), session_id)
        return self._step(session_id, result)

    async def submit(self, session_id: uuid.UUID, reevaluate: bool = False,
                     tenant: str = DEFAULT_TENANT) -> SessionReport:
        """Evaluate whatever is pending for an existing session and close it (idempotent)."""
        session = await self._services.storage.sessions.get_session(session_id, tenant=tenant)
        if not session.is_ended:
            await self._run(
                {"session_id": str(session_id), "mode": "submission",
                 "position": session.position, "language": session.language,
                 "participant_id": session.participant_id, "max_turns": session.max_turns,
                 "reevaluate": reevaluate},
                session_id,
            )
        return await self.report(session_id, tenant)

    async def submit_transcript(
        self,
        *,
        participant_id: str,
        position: str,
        language: str,
        transcript: Sequence[TranscriptItem],
        session_id: uuid.UUID | None = None,
        exam_id: str | None = None,
        reevaluate: bool = False,
        tenant: str = DEFAULT_TENANT,
    ) -> SessionReport:
        """Store a complete transcript, evaluate every turn and the flow, close the session.

        With the `session_id` of an already closed session and the same transcript, the
        stored report is returned unchanged (idempotent resubmission).
        """
        session_id = session_id or uuid.uuid4()
        existing = await self.check_owner(session_id, tenant, missing_ok=True)
        if existing is not None and existing.is_ended:
            report = await self.report(session_id, tenant)
            stored = [(t.question, t.answer) for t in report.turns]
            if stored == [(item["question"], item["answer"]) for item in transcript]:
                return report
        await self._run(
            {
                "session_id": str(session_id),
                "participant_id": participant_id,
                "exam_id": exam_id,
                "position": position,
                "language": language,
                "max_turns": len(transcript),
                "mode": "submission",
                "transcript": list(transcript),
                "reevaluate": reevaluate,
            },
            session_id,
            tenant,
        )
        return await self.report(session_id, tenant)

    async def report(self, session_id: uuid.UUID, tenant: str = DEFAULT_TENANT
                     ) -> SessionReport:
        """The stored transcript and evaluations of a session."""
        storage = self._services.storage
        session = await storage.sessions.get_session(session_id, tenant=tenant)
        transcript = await storage.sessions.get_transcript(session_id)
        evaluations = await storage.evaluations.list_evaluations(session_id)
        by_turn = {
            e.turn: e.details for e in evaluations if e.evaluation_type is EvaluationType.TURN_EVAL
        }
        holistic = next(
            (e.details for e in evaluations
             if e.evaluation_type is EvaluationType.HOLISTIC_FLOW),
            None,
        )
        scores = [float(details["score"]) for details in by_turn.values()]
        flags = sorted(
            {flag for details in by_turn.values() for flag in details.get("flags", [])}
            | set((holistic or {}).get("flags", []))
        )
        return SessionReport(
            session_id=session.id,
            participant_id=session.participant_id,
            position=session.position,
            language=session.language,
            started_at=session.started_at.isoformat(),
            ended_at=session.ended_at.isoformat() if session.ended_at else None,
            turns=[
                TurnReport(
                    turn=t.turn, question=t.question_text, answer=t.answer_text,
                    evaluation=by_turn.get(t.turn),
                )
                for t in transcript
            ],
            holistic=holistic,
            turn_score_mean=round(sum(scores) / len(scores), 2) if scores else None,
            flags=flags,
        )
