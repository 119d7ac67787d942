"""A submission's TURN_EVALs are judged at once and stored with one bulk upsert; a failure
keeps the others, and an unexpected error stores nothing.

Real PostgreSQL; the judge is the LLM judge on a scripted fake chat model that fails on one
turn's prompt (invalid output, no retries left), so that turn has no result.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langgraph.runtime import Runtime

from graph import Services, build_graph, use_services
from graph.context import Context
from graph.state import TurnTask
from nodes.close_session import EvaluationIncompleteError
from nodes.evaluate_turn import evaluate_turn
from nodes.judges.details import EvaluationDetails
from nodes.judges.judge import FlowCase, TurnCase
from nodes.judges.llm.judge import LLMJudge, TurnJudgement
from nodes.question_generation import BankQuestionGenerator
from storage.errors import TurnNotFoundError
from storage.evaluations import TurnEvaluationInput
from storage.models import EvaluationType
from storage.services import Storage
from storage.sessions import TranscriptTurn
from storage.turn_writes import save_turn_results
from tests.integration.test_graph_llm import judgement, submission
from tests.support.fake_chat import BadOutput, ScriptedChatModel

pytestmark = pytest.mark.integration

DETAILS = {
    "score": 50,
    "analysis": "ok",
    "judge": {"kind": "llm", "model": "m", "prompt_version": "v2"},
}


def failing_on_turn(failing: int) -> Any:
    def respond(schema: type, messages: list[BaseMessage]) -> Any:
        if schema is TurnJudgement and f"Interview turn {failing}" in str(messages[-1].content):
            return BadOutput("no tool call")
        return judgement(schema, messages)

    return respond


def count_bulk_writes(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the TURN_EVAL upsert statements issued (every path goes through the bulk)."""
    sizes: list[int] = []
    bulk = storage.evaluations.save_turn_evaluations

    async def counting(items: Sequence[TurnEvaluationInput]) -> Any:
        sizes.append(len(items))
        return await bulk(items)

    monkeypatch.setattr(storage.evaluations, "save_turn_evaluations", counting)
    return sizes


async def test_one_statement_per_submission_and_a_failed_turn_keeps_the_others(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = count_bulk_writes(storage, monkeypatch)
    judge = LLMJudge(
        ScriptedChatModel(default=failing_on_turn(3)), model_name="fake", max_retries=0
    )
    services = Services(
        storage=storage, judge=judge, question_generator=BankQuestionGenerator(storage.questions)
    )
    session_id = uuid.uuid4()
    with use_services(services), pytest.raises(EvaluationIncompleteError, match="turn 3"):
        await build_graph().ainvoke(submission(session_id, 6))

    assert sizes == [5]  # the five successful turns, in one statement
    rows = await storage.evaluations.list_evaluations(session_id)
    turn_rows = [e for e in rows if e.evaluation_type is EvaluationType.TURN_EVAL]
    assert [e.turn for e in turn_rows] == [1, 2, 4, 5, 6]
    assert len({e.created_at for e in turn_rows}) == 1  # one transaction wrote them all
    assert any(e.evaluation_type is EvaluationType.HOLISTIC_FLOW for e in rows)
    assert (await storage.sessions.get_session(session_id)).ended_at is None

    # The re-run evaluates only turn 3 (stored alone) and closes the session.
    sizes.clear()
    fixed = LLMJudge(ScriptedChatModel(default=judgement), model_name="fake", max_retries=0)
    with use_services(
        Services(
            storage=storage,
            judge=fixed,
            question_generator=BankQuestionGenerator(storage.questions),
        )
    ):
        result = await build_graph().ainvoke(submission(session_id, 6))
    assert result["status"] == "completed" and sizes == [1]
    assert len(await storage.evaluations.list_evaluations(session_id)) == 7


async def _session_with_one_turn(storage: Storage) -> uuid.UUID:
    session = await storage.sessions.create_session(
        participant_id="p-writes", position="backend", language="en", max_turns=2
    )
    await storage.sessions.save_transcript(session.id, [TranscriptTurn("q1", "a1")])
    return session.id


async def test_a_refused_bulk_falls_back_to_one_row_each(storage: Storage) -> None:
    session_id = await _session_with_one_turn(storage)  # turn 1 exists; turn 2 does not
    with pytest.raises(TurnNotFoundError):
        await save_turn_results(storage.evaluations, session_id, {1: DETAILS, 2: DETAILS})
    stored = await storage.evaluations.list_evaluations(session_id)
    assert [e.turn for e in stored] == [1]  # the good row is stored despite the bad one


class _BrokenOnTurn:
    """A judge that breaks (not a `JudgeError`) on one turn and is slow on every other."""

    def __init__(self, broken: int) -> None:
        self.broken = broken
        self.started: list[int] = []
        self.cancelled: list[int] = []

    async def evaluate_turn(self, case: TurnCase) -> EvaluationDetails:
        self.started.append(case.turn)
        if case.turn == self.broken:
            await asyncio.sleep(0.05)  # the others are in flight by now
            raise RuntimeError("judge crashed")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.append(case.turn)
            raise
        raise AssertionError("not cancelled")

    async def evaluate_flow(self, case: FlowCase) -> EvaluationDetails:
        await asyncio.sleep(30)
        raise AssertionError("not cancelled")


async def test_an_unexpected_judge_error_cancels_the_batch_and_stores_nothing(
    storage: Storage,
) -> None:
    judge = _BrokenOnTurn(broken=2)
    services = Services(
        storage=storage,
        judge=judge,  # type: ignore[arg-type]  # only the two evaluation methods are used
        question_generator=BankQuestionGenerator(storage.questions),
    )
    session_id = uuid.uuid4()
    with use_services(services), pytest.raises(RuntimeError, match="judge crashed"):
        await asyncio.wait_for(build_graph().ainvoke(submission(session_id, 4)), timeout=10)
    await asyncio.sleep(0)  # let the cancellations land
    assert sorted(judge.started) == [1, 2, 3, 4]  # judged concurrently, not one by one
    assert sorted(judge.cancelled) == [1, 3, 4]
    assert await storage.evaluations.list_evaluations(session_id) == []
    assert (await storage.sessions.get_session(session_id)).ended_at is None


async def test_a_lone_turn_task_of_an_older_checkpoint_is_a_batch_of_one(
    storage: Storage, offline_services: Services
) -> None:
    """Releases before batches sent node 4 one `TurnTask`; a checkpoint holding one resumes."""
    session_id = await _session_with_one_turn(storage)
    legacy = TurnTask(
        session_id=str(session_id),
        position="backend",
        language="en",
        turn=1,
        question="q1",
        answer="a1",
        category=None,
    )
    with use_services(offline_services):
        update = await evaluate_turn(legacy, Runtime(context=Context()))  # type: ignore[arg-type]
    assert [score["turn"] for score in update["turn_evaluations"]] == [1]
    assert [e.turn for e in await storage.evaluations.list_evaluations(session_id)] == [1]
