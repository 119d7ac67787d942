"""JUDGE_SCORE_WEIGHTING=logprobs through the graph: the weighted score is stored in the
real database beside the sampled one (storage's validation and CHECKs accept it)."""

from __future__ import annotations

import uuid

import pytest

from graph import Services, build_graph, use_services
from nodes.question_generation import BankQuestionGenerator
from storage.services import Storage
from tests.support.openai_stub import OpenAIStub
from tests.support.stub_judge import stub_judge, verdict

pytestmark = pytest.mark.integration


async def test_the_weighted_score_is_stored_beside_the_sampled_one(
    storage: Storage, stub: OpenAIStub
) -> None:
    stub.responder = verdict(80)
    judge = stub_judge(stub, judge_score_weighting="logprobs")
    session_id = uuid.uuid4()
    services = Services(
        storage=storage, judge=judge, question_generator=BankQuestionGenerator(storage.questions)
    )
    payload = {
        "session_id": str(session_id),
        "mode": "submission",
        "position": "backend",
        "participant_id": "p-logprobs",
        "transcript": [
            {
                "question": f"Question {n}: how would you cache service {n}?",
                "answer": f"A read-through cache for service {n}, invalidated on write.",
            }
            for n in (1, 2)
        ],
    }
    with use_services(services):
        result = await build_graph().ainvoke(payload)
    assert result["status"] == "completed"
    rows = await storage.evaluations.list_evaluations(session_id)
    assert len(rows) == 3 and all(r["logprobs"] is True for r in stub.requests)
    for row in rows:
        assert row.details["score"] == 80  # the sampled score is the stored one
        # the stub's alternatives: 80 (0.6), 70 (0.25), 90 (0.1), 0.05 elsewhere
        assert row.details["score_distribution"] == {
            "status": "ok",
            "sampled": 80,
            "weighted": round((0.6 * 80 + 0.25 * 70 + 0.1 * 90) / 0.95, 1),
            "mass": 0.95,
        }
