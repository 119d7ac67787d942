"""Submission mode with an LLM judge: a fake chat model, and the real ChatOpenAI path against
the local OpenAI-compatible stub (faults, retries, parallel fan-out), on the real database."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_core.messages import BaseMessage

from graph import Services, build_graph, use_services
from nodes.close_session import EvaluationIncompleteError
from nodes.judges.judge import TurnCase
from nodes.judges.llm.client import make_chat_model
from nodes.judges.llm.judge import FlowJudgement, LLMJudge, TurnJudgement, prompt_version
from nodes.question_generation import BankQuestionGenerator
from storage.models import EvaluationType
from storage.services import Storage
from tests.support.fake_chat import ScriptedChatModel
from tests.support.openai_stub import OpenAIStub
from tests.support.stub_judge import stub_judge, stub_settings

pytestmark = pytest.mark.integration


def transcript(turns: int) -> list[dict[str, str]]:
    return [
        {
            "question": f"Question {n}: how would you scale service {n} to 10x traffic?",
            "answer": f"For service {n} I would profile first, add a cache and shard by tenant; "
            f"last year that took p95 from {300 + n} ms to {80 + n} ms.",
        }
        for n in range(1, turns + 1)
    ]


def judgement(schema: type, messages: list[BaseMessage]) -> Any:
    common = {
        "analysis": "solid",
        "strengths": ["specific"],
        "improvements": [],
        "keywords": ["cache"],
        "flags": [],
        "feedback": "good",
    }
    if schema is FlowJudgement:
        return FlowJudgement(
            score=70,
            rubrics=[
                {"criterion": "consistency", "evidence": [], "score": 70, "reason": "consistent"}
            ],
            **common,
        )
    return TurnJudgement(
        score=80,
        rubrics=[{"criterion": "relevance", "evidence": [], "score": 80, "reason": "on topic"}],
        **common,
    )


async def invoke(
    graph: Any, payload: dict[str, Any], storage: Storage, judge: LLMJudge
) -> dict[str, Any]:
    """Run `graph` on `payload` with `judge` (and the bank's questions) as its services."""
    services = Services(
        storage=storage, judge=judge, question_generator=BankQuestionGenerator(storage.questions)
    )
    with use_services(services):
        result: dict[str, Any] = await graph.ainvoke(payload)
    return result


def submission(session_id: uuid.UUID, turns: int) -> dict[str, Any]:
    return {
        "session_id": str(session_id),
        "mode": "submission",
        "position": "backend",
        "participant_id": "p-llm",
        "transcript": transcript(turns),
    }


async def evaluation_counts(storage: Storage, session_id: uuid.UUID) -> tuple[int, int]:
    rows = await storage.evaluations.list_evaluations(session_id)
    turn_evals = sum(e.evaluation_type is EvaluationType.TURN_EVAL for e in rows)
    return turn_evals, sum(e.evaluation_type is EvaluationType.HOLISTIC_FLOW for e in rows)


async def test_submission_with_fake_chat_model(storage: Storage) -> None:
    model = ScriptedChatModel(default=judgement)
    judge = LLMJudge(model, model_name="fake", max_retries=0)
    session_id = uuid.uuid4()
    result = await invoke(build_graph(), submission(session_id, 3), storage, judge)
    assert result["status"] == "completed"
    assert len(model.calls_for(TurnJudgement)) == 3 and len(model.calls_for(FlowJudgement)) == 1
    rows = await storage.evaluations.list_evaluations(session_id)
    assert [(e.turn, e.score) for e in rows] == [(1, 80), (2, 80), (3, 80), (None, 70)]
    assert rows[0].details["judge"] == {
        "kind": "llm",
        "model": "fake",
        "prompt_version": prompt_version(),
    }
    assert rows[0].details["rubrics"]["relevance"]["reason"] == "on topic"


async def test_real_chat_openai_recovers_from_transient_faults(
    storage: Storage, stub: OpenAIStub
) -> None:
    judge = stub_judge(stub, llm_timeout_s=0.5)
    stub.timeout_sleep_s = 3
    stub.add_fault("500", times=1)
    stub.add_fault("429", times=1)
    stub.add_fault("malformed", times=1)
    stub.add_fault("timeout", times=1)
    session_id = uuid.uuid4()
    result = await invoke(build_graph(), submission(session_id, 3), storage, judge)
    assert result["status"] == "completed" and result["failures"] == []
    assert stub.calls == 4 + 4  # four evaluations, four faulted attempts retried
    assert await evaluation_counts(storage, session_id) == (3, 1)
    holistic = await storage.evaluations.get_holistic_evaluation(session_id)
    assert holistic is not None and holistic.details["usage"]["total_tokens"] > 0


async def test_exhausted_retries_leave_the_session_open_and_a_rerun_completes_it(
    storage: Storage, stub: OpenAIStub
) -> None:
    judge = stub_judge(stub)
    stub.add_fault("500", times=None, match="FlowJudgement")  # every holistic attempt fails
    session_id = uuid.uuid4()
    graph = build_graph()
    with pytest.raises(EvaluationIncompleteError, match="holistic flow") as failure:
        await invoke(graph, submission(session_id, 3), storage, judge)
    assert failure.value.failures[0]["target"] == "holistic"
    assert await evaluation_counts(storage, session_id) == (3, 0)  # turns kept, no holistic
    assert (await storage.sessions.get_session(session_id)).ended_at is None

    stub.clear_faults()
    stub.reset_stats()
    result = await invoke(graph, submission(session_id, 3), storage, judge)
    assert result["status"] == "completed"
    assert stub.calls == 1, "only the missing HOLISTIC_FLOW is evaluated again"
    assert await evaluation_counts(storage, session_id) == (3, 1)
    assert (await storage.sessions.get_session(session_id)).ended_at is not None


async def test_a_jury_stores_medians_with_agreement(storage: Storage, stub: OpenAIStub) -> None:
    judge = stub_judge(stub, judge_models="m1,m2,m3")
    stub.latency_s = 0.2
    session_id = uuid.uuid4()
    result = await invoke(build_graph(), submission(session_id, 2), storage, judge)
    assert result["status"] == "completed"
    assert stub.calls == 3 * 3  # two TURN_EVALs and the HOLISTIC_FLOW, three jurors each
    assert stub.max_concurrency == 9  # every juror of every item in flight at once
    rows = await storage.evaluations.list_evaluations(session_id)
    for row in rows:
        agreement = row.details["agreement"]
        assert [j["model"] for j in agreement["jurors"]] == ["m1", "m2", "m3"]
        scores = sorted(j["score"] for j in agreement["jurors"])
        assert row.details["score"] == scores[1]
        assert agreement["spread"] == scores[2] - scores[0]
        assert agreement["confidence"] in {"high", "medium", "low"}
        assert row.details["usage"]["calls"] == 3
        assert row.details["judge"]["model"] == "m1,m2,m3"


async def test_the_flow_debate_is_stored_with_its_four_participants(
    storage: Storage, stub: OpenAIStub
) -> None:
    judge = stub_judge(stub, holistic_mode="debate")
    session_id = uuid.uuid4()
    result = await invoke(build_graph(), submission(session_id, 2), storage, judge)
    assert result["status"] == "completed"
    assert stub.calls == 2 + 3 + 1  # two TURN_EVALs, three advocates, one verdict
    holistic = await storage.evaluations.get_holistic_evaluation(session_id)
    assert holistic is not None
    debate = holistic.details["debate"]
    assert set(debate) == {"strict", "generous", "neutral", "verdict"}
    assert holistic.details["score"] == debate["verdict"]["score"]
    assert holistic.details["usage"]["calls"] == 4
    turns = [e for e in await storage.evaluations.list_evaluations(session_id) if e.turn]
    assert all("debate" not in e.details for e in turns)


async def test_a_juror_failing_after_its_retries_stores_nothing_for_its_items(
    storage: Storage, stub: OpenAIStub
) -> None:
    judge = stub_judge(stub, judge_models="m1,m2,m3")
    stub.add_fault("500", times=None, match='"model": "m2"')
    session_id = uuid.uuid4()
    with pytest.raises(EvaluationIncompleteError) as failure:
        await invoke(build_graph(), submission(session_id, 2), storage, judge)
    failures = sorted((f["target"], f["turn"] or 0) for f in failure.value.failures)
    assert failures == [("holistic", 0), ("turn", 1), ("turn", 2)]
    assert all("juror 2 of 3 (m2" in f["error"] for f in failure.value.failures)
    assert await evaluation_counts(storage, session_id) == (0, 0)  # no partial details
    assert (await storage.sessions.get_session(session_id)).ended_at is None


async def test_reevaluation_updates_in_place(storage: Storage, stub: OpenAIStub) -> None:
    judge = stub_judge(stub)
    stub.add_fault("500", times=None, match="FlowJudgement")
    session_id = uuid.uuid4()
    graph = build_graph()
    with pytest.raises(EvaluationIncompleteError):
        await invoke(graph, submission(session_id, 2), storage, judge)
    first = {e.turn: e for e in await storage.evaluations.list_evaluations(session_id)}
    stub.clear_faults()
    await invoke(graph, {**submission(session_id, 2), "reevaluate": True}, storage, judge)
    second = {e.turn: e for e in await storage.evaluations.list_evaluations(session_id)}
    assert await evaluation_counts(storage, session_id) == (2, 1)
    for turn in (1, 2):
        assert second[turn].id == first[turn].id
        assert second[turn].created_at == first[turn].created_at
        assert second[turn].updated_at > first[turn].updated_at


async def test_fan_out_is_parallel(storage: Storage, stub: OpenAIStub) -> None:
    judge = stub_judge(stub)
    stub.latency_s = 0.3
    session_id = uuid.uuid4()
    result = await invoke(build_graph(), submission(session_id, 8), storage, judge)
    assert result["status"] == "completed"
    assert stub.calls == 9
    # All 8 TURN_EVALs and the HOLISTIC_FLOW were in flight at once (not 8 x latency).
    assert stub.max_concurrency == 9


async def test_concurrency_is_bounded_by_setting(storage: Storage, stub: OpenAIStub) -> None:
    judge = stub_judge(stub, llm_max_concurrency=3)
    stub.latency_s = 0.1
    result = await invoke(build_graph(), submission(uuid.uuid4(), 8), storage, judge)
    assert result["status"] == "completed"
    assert stub.max_concurrency == 3


def test_make_chat_model_points_at_the_configured_endpoint(stub: OpenAIStub) -> None:
    model = make_chat_model(stub_settings(stub))
    assert str(model.openai_api_base) == stub.base_url
    assert model.temperature == 0


async def test_judge_closes_its_http_client(stub: OpenAIStub) -> None:
    judge = LLMJudge.from_settings(stub_settings(stub))
    case = TurnCase(position="backend", language="en", turn=1, question="Why?", answer="Because.")
    assert (await judge.evaluate_turn(case)).judge.kind == "llm"
    await judge.aclose()
    assert judge._chat_model.is_closed()  # type: ignore[union-attr]  # the openai SDK client
