"""Node 2, generate_question: the next question, persisted before it is handed out.

If the question of this turn is already stored (the node re-ran after a crash), it is reused
rather than generated again, so the candidate never sees two different questions for one turn.
When the bank has nothing left to ask, the interview moves on to evaluation.
"""

from __future__ import annotations

import uuid
from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.services import resolve_services
from graph.state import InterviewState, TurnRecord
from nodes.open_session import turn_record
from nodes.question_generation import AskedTurn, NoQuestionsLeftError


async def generate_question(state: InterviewState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Ask turn N+1: reuse a stored unanswered question, else generate and store a new one."""
    services = await resolve_services(runtime.context)
    assert state.session_id is not None  # set by open_session
    session_id = uuid.UUID(state.session_id)
    if state.turns and state.turns[-1]["answer"] is None:
        return {}  # the last question is still waiting for its answer: ask it again
    number = len(state.turns) + 1
    stored_turns = await services.storage.sessions.get_transcript(session_id)
    if len(stored_turns) >= number:  # asked before a crash or by another process: reuse it
        view = stored_turns[number - 1]
        return {"turns": [turn_record(view)]}
    history = [
        AskedTurn(
            question=turn["question"],
            answer=turn["answer"],
            question_id=turn["question_id"],
            category=turn["category"],
        )
        for turn in state.turns
    ]
    try:
        question = await services.question_generator.next_question(
            position=state.position, language=state.language, history=history
        )
    except NoQuestionsLeftError:
        return {"stop_requested": True}
    stored = await services.storage.sessions.add_question(
        session_id, number, question.text, question_id=question.question_id
    )
    record = TurnRecord(
        turn=number,
        question=stored.question_text,
        question_id=stored.question_id,
        category=question.category,
        answer=None,
    )
    if question.expected_points:  # an LLM-written question carries its own reference
        record["expected_points"] = list(question.expected_points)
    return {"turns": [record]}
