"""Node 4, evaluate_turn: the TURN_EVALs of answered turns, judged at once and saved together.

It receives a `TurnBatch` through `Send`: the one answer just given in interview mode, and
every pending turn in submission mode. The batch's turns are judged concurrently (the judge's
limiter bounds the LLM calls in flight) and their rows are stored in one statement. One task
per submission instead of one per turn: LangGraph's scheduling of a task cost ~0.5 ms of CPU
per turn, a sixth of an LLM call's client cost (issue 9).

A judge failure after its retries is recorded in the state instead of aborting the other
turns: they are judged and stored, and close_session then refuses to close. Any other error
cancels the batch's other judgements and stores nothing.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, cast

from langgraph.runtime import Runtime

from graph.context import Context
from graph.services import resolve_services
from graph.state import Failure, InterviewState, TurnBatch, TurnScore, TurnTask
from nodes.concurrency import all_or_none
from nodes.judges.details import EvaluationDetails
from nodes.judges.judge import Judge, JudgeError, TurnCase
from storage.turn_writes import save_turn_results

logger = logging.getLogger(__name__)


def turn_batch(state: InterviewState, turns: list[int]) -> TurnBatch:
    """The batch of the given turn numbers (they must be answered)."""
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
    return TurnBatch(tasks=tasks)


async def _judge(judge: Judge, task: TurnTask) -> EvaluationDetails | Failure:
    """The turn's details, or its failure when the judge gave up (`JudgeError`)."""
    case = TurnCase(
        position=task["position"],
        language=task["language"],
        turn=task["turn"],
        question=task["question"],
        answer=task["answer"],
        category=task["category"],
        expected_points=tuple(task.get("expected_points", ())),
    )
    try:
        return await judge.evaluate_turn(case)
    except JudgeError as exc:
        logger.warning("TURN_EVAL of turn %s failed: %s", task["turn"], exc)
        return Failure(target="turn", turn=task["turn"], error=str(exc))


def tasks_of(received: TurnBatch | TurnTask) -> list[TurnTask]:
    """The batch's tasks; a lone `TurnTask` is a batch of one.

    Releases before batches sent node 4 one `TurnTask` per turn. An interview checkpointed
    while such a task was pending (the process died during an evaluation) still resumes
    after an upgrade.
    """
    if "tasks" in received:
        return cast(TurnBatch, received)["tasks"]
    return [received]


async def evaluate_turn(batch: TurnBatch, runtime: Runtime[Context]) -> dict[str, Any]:
    """Judge the batch's turns concurrently, then upsert their TURN_EVALs in one statement."""
    services = await resolve_services(runtime.context)
    tasks = tasks_of(batch)
    outcomes = await all_or_none([_judge(services.judge, task) for task in tasks])
    verdicts = {
        task["turn"]: details
        for task, details in zip(tasks, outcomes, strict=True)
        if isinstance(details, EvaluationDetails)
    }
    failures = [outcome for outcome in outcomes if not isinstance(outcome, EvaluationDetails)]
    if verdicts:
        await save_turn_results(
            services.storage.evaluations,
            uuid.UUID(tasks[0]["session_id"]),
            {turn: details.to_json() for turn, details in verdicts.items()},
        )
    scores = [
        TurnScore(turn=turn, score=details.score, analysis=details.analysis, flags=details.flags)
        for turn, details in verdicts.items()
    ]
    update: dict[str, Any] = {"turn_evaluations": scores}
    if failures:
        update["failures"] = failures
    return update
