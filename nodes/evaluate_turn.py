"""Node 4, evaluate_turn: TURN_EVAL of one answered turn, judged and saved via the service.

It always receives a `TurnTask` through `Send`: one per answer in interview mode, and all
pending turns at once (in parallel) in submission mode. A judge failure after its retries is
recorded in the state instead of aborting the siblings; close_session then refuses to close.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.services import resolve_services
from graph.state import Failure, InterviewState, TurnScore, TurnTask
from nodes.judges.judge import JudgeError, TurnCase

logger = logging.getLogger(__name__)


def turn_tasks(state: InterviewState, turns: list[int]) -> list[TurnTask]:
    """Tasks for the given turn numbers (they must be answered)."""
    assert state.session_id is not None
    by_number = {turn["turn"]: turn for turn in state.turns}
    tasks = []
    for number in turns:
        record = by_number[number]
        assert record["answer"] is not None
        task = TurnTask(
            session_id=state.session_id,
            position=state.position,
            language=state.language,
            turn=number,
            question=record["question"],
            answer=record["answer"],
            category=record["category"],
        )
        if record.get("expected_points"):
            task["expected_points"] = record["expected_points"]
        tasks.append(task)
    return tasks


async def evaluate_turn(task: TurnTask, runtime: Runtime[Context]) -> dict[str, Any]:
    """Judge one turn and upsert its TURN_EVAL."""
    services = await resolve_services(runtime.context)
    case = TurnCase(
        position=task["position"],
        language=task["language"],
        turn=task["turn"],
        question=task["question"],
        answer=task["answer"],
        category=task["category"],
        expected_points=tuple(task.get("expected_points", ())),
    )
    session_id, writes = uuid.UUID(task["session_id"]), services.storage.turn_writes
    try:
        details = await services.judge.evaluate_turn(case)
    except JudgeError as exc:
        logger.warning("TURN_EVAL of turn %s failed: %s", task["turn"], exc)
        await writes.skip(session_id, task["turn"])  # the siblings' rows are stored without it
        return {"failures": [Failure(target="turn", turn=task["turn"], error=str(exc))]}
    except BaseException:
        writes.abandon(session_id)  # the run is torn down: store nothing more of it
        raise
    # In submission mode the rows of all turns are stored together, in one statement.
    await writes.save(session_id, task["turn"], details.to_json())
    summary = TurnScore(
        turn=task["turn"], score=details.score, analysis=details.analysis, flags=details.flags
    )
    return {"turn_evaluations": [summary]}
