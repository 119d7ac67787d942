"""Node 6a, evaluate_holistic_flow: HOLISTIC_FLOW over the whole conversation.

Consistency, depth progression and strategy across turns are judged on the transcript alone,
so in submission mode this node runs in parallel with every TURN_EVAL.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.services import resolve_services
from graph.state import Failure, HolisticSummary, InterviewState
from nodes.judges.judge import FlowCase, JudgeError, TurnCase

logger = logging.getLogger(__name__)


async def evaluate_holistic_flow(
    state: InterviewState, runtime: Runtime[Context]
) -> dict[str, Any]:
    """Judge the conversation and upsert its HOLISTIC_FLOW."""
    services = await resolve_services(runtime.context)
    assert state.session_id is not None
    answered = state.answered_turns()
    if not answered:
        failure = Failure(target="holistic", turn=None, error="no answered turn to evaluate")
        return {"failures": [failure]}
    case = FlowCase(
        position=state.position,
        language=state.language,
        turns=tuple(
            TurnCase(
                position=state.position,
                language=state.language,
                turn=turn["turn"],
                question=turn["question"],
                answer=turn["answer"] or "",
                category=turn["category"],
                expected_points=tuple(turn.get("expected_points", ())),
            )
            for turn in answered
        ),
    )
    try:
        details = await services.judge.evaluate_flow(case)
    except JudgeError as exc:
        logger.warning("HOLISTIC_FLOW of session %s failed: %s", state.session_id, exc)
        return {"failures": [Failure(target="holistic", turn=None, error=str(exc))]}
    await services.storage.evaluations.save_holistic_evaluation(
        uuid.UUID(state.session_id), details.to_json()
    )
    summary = HolisticSummary(score=details.score, analysis=details.analysis, flags=details.flags)
    return {"holistic": summary}
