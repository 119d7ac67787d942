"""Node 1, open_session: create or load the session (and, in submission mode, its transcript).

The session id is, in order: `state.session_id`, the run's thread id when it is a UUID (so the
checkpointer's thread and the database session are the same thing), or a new UUID. An ended
session is never reopened: a retry is a new session.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config
from langgraph.runtime import Runtime

from graph.context import Context
from graph.services import resolve_services
from graph.state import InterviewState, TurnRecord
from nodes.judges.rubrics import load_rubric
from storage.errors import SessionEndedError
from storage.sessions import SessionProfile, TranscriptTurn
from storage.settings import DEFAULT_TENANT
from storage.views import TurnView


class InvalidInterviewInputError(ValueError):
    """The run's input cannot start or continue a session."""


def _session_id(state: InterviewState, config: RunnableConfig) -> uuid.UUID:
    if state.session_id:
        try:
            return uuid.UUID(state.session_id)
        except ValueError as exc:
            raise InvalidInterviewInputError(
                f"session_id must be a UUID, got {state.session_id!r}"
            ) from exc
    thread_id = config.get("configurable", {}).get("thread_id")
    if thread_id:
        try:
            return uuid.UUID(str(thread_id))
        except ValueError:
            pass  # a free-form thread id (e.g. from Studio): the session gets its own id
    return uuid.uuid4()


def _check_input(state: InterviewState) -> None:
    load_rubric(state.position)  # UnknownPositionError names the known positions
    if state.language not in {"en", "ko"}:
        raise InvalidInterviewInputError(f"language must be 'en' or 'ko', got {state.language!r}")
    if state.max_turns < 1:
        raise InvalidInterviewInputError(f"max_turns must be >= 1, got {state.max_turns}")
    for index, item in enumerate(state.transcript, start=1):
        if not str(item.get("question", "")).strip():
            raise InvalidInterviewInputError(f"transcript[{index}].question is empty")
        if not isinstance(item.get("answer"), str):
            raise InvalidInterviewInputError(f"transcript[{index}].answer must be a string")


def turn_record(view: TurnView, category: str | None = None) -> TurnRecord:
    """State record of a stored turn."""
    return TurnRecord(
        turn=view.turn,
        question=view.question_text,
        question_id=view.question_id,
        category=category,
        answer=view.answer_text,
    )


async def open_session(state: InterviewState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Create or load the session; in submission mode store the transcript and list the work."""
    _check_input(state)
    config = get_config()
    services = await resolve_services(runtime.context)
    store = services.storage.sessions
    session_id = _session_id(state, config)
    tenant = str(config.get("configurable", {}).get("tenant") or DEFAULT_TENANT)
    profile = SessionProfile(
        participant_id=state.participant_id,
        exam_id=state.exam_id,
        position=state.position,
        language=state.language,
        max_turns=max(state.max_turns, len(state.transcript)),
        metadata=state.metadata,
        tenant=tenant,
    )
    if state.mode == "submission":
        # One transaction: the session, its transcript and what is evaluated already.
        start = await store.open_submission(
            session_id,
            profile,
            [
                TranscriptTurn(item["question"], item["answer"], emotion=item.get("emotion"))
                for item in state.transcript
            ],
        )
        session, views = start.session, start.turns
    else:
        session = await store.create_session(session_id=session_id, **dataclasses.asdict(profile))
        if session.is_ended:
            raise SessionEndedError(session.id)
        views = await store.get_transcript(session.id)
    update: dict[str, Any] = {
        "session_id": str(session.id),
        "position": session.position,
        "language": session.language,
        "max_turns": session.max_turns,
        "turns": [turn_record(view) for view in views],
        "failures": None,  # a new run starts clean
        "stop_requested": False,
        "status": "in_progress",
    }
    if state.mode == "submission":
        answered = [view.turn for view in views if view.answer_text is not None]
        if not answered:
            raise InvalidInterviewInputError(
                f"session {session.id} has no answered turn to evaluate; submit a transcript"
            )
        pending = [
            turn for turn in answered if state.reevaluate or turn not in start.evaluated_turns
        ]
        update["pending_turns"] = pending
        update["holistic_pending"] = state.reevaluate or not start.has_holistic
        update["status"] = "evaluating"
    return update
