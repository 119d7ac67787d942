"""JUDGE_SCORE_WEIGHTING=logprobs: the probability-weighted overall score (G-Eval style).

The weighing itself on hand-built logprobs (`nodes.judges.llm.logprobs.weigh_score`), then
the judge against the local OpenAI-compatible stub, whose tool-call text comes with known
alternatives at the overall score's token (`OpenAIStub.score_alternatives`).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import pytest
from openai import _base_client as sdk_base_client
from openai.resources.chat.completions import completions as sdk_completions

from nodes.judges.judge import FlowCase
from nodes.judges.llm.client import make_openai_client
from nodes.judges.llm.judge import FlowJudgement, LLMJudge, TurnJudgement
from nodes.judges.llm.logprobs import TOP_LOGPROBS, weigh_score
from nodes.judges.settings import JudgeSettings
from storage.evaluations import validate_details
from tests.support.openai_stub import OpenAIStub
from tests.support.stub_judge import (
    PAYMENT_CASE,
    count_schema_builds,
    spy_on_posts,
    stub_judge,
    verdict,
)

#: The stub's default alternatives around a sampled 80: 80 (0.6), 70 (0.25), 90 (0.1), and
#: 0.05 on a non-numeric token. By hand: (0.6*80 + 0.25*70 + 0.1*90) / 0.95 = 74.5 / 0.95.
WEIGHTED_80 = 78.4
MASS_80 = 0.95


# --------------------------------------------------------------------------- the weighing


def token(
    text: str, p: float = 1.0, alternatives: dict[str, float] | None = None
) -> dict[str, Any]:
    """One `logprobs.content` entry of probability `p` with its alternatives."""
    options = alternatives if alternatives is not None else {text: p}
    return {
        "token": text,
        "logprob": math.log(p),
        "bytes": list(text.encode()),
        "top_logprobs": [
            {"token": t, "logprob": math.log(q), "bytes": list(t.encode())}
            for t, q in options.items()
        ],
    }


def tokens_of(*parts: str | dict[str, Any]) -> dict[str, Any]:
    """`{"content": [...]}`: strings become certain tokens, dicts stay as they are."""
    return {"content": [token(p) if isinstance(p, str) else p for p in parts]}


def korean_bytes(text: str) -> list[dict[str, Any]]:
    """`text` as one token per UTF-8 byte, each token's text a lie ("bytes:\\x..")."""
    return [
        {"token": f"bytes:\\x{b:02x}", "logprob": 0.0, "bytes": [b], "top_logprobs": []}
        for b in text.encode()
    ]


def test_the_overall_score_is_weighted_not_a_criterion_score() -> None:
    score = token("80", 0.5, {"80": 0.5, "75": 0.3, "x": 0.1, "85": 0.1})
    logprobs = {
        "content": [
            *tokens_of('{"rubrics": [{"criterion": "relevance", "score": ', "60", "}], ")[
                "content"
            ],
            *tokens_of('"analysis": "')["content"],
            *korean_bytes("좋은 답변 {score: 1}"),  # braces inside a string are text
            *tokens_of('", "score": ')["content"],
            score,
            *tokens_of(', "feedback": "ok"}')["content"],
        ]
    }
    distribution = weigh_score(logprobs, 80)
    assert distribution.status == "ok" and distribution.reason is None
    assert distribution.sampled == 80
    assert distribution.weighted == round((0.5 * 80 + 0.3 * 75 + 0.1 * 85) / 0.9, 1) == 78.9
    assert distribution.mass == 0.9


def test_a_wrapped_call_and_leading_spaces_count() -> None:
    """Hermes-style `<tool_call>{"name", "arguments"}`; " 85" and "85" both mean 85."""
    score = token(" 85", 0.5, {" 85": 0.5, "85": 0.2, " 100": 0.1, " 101": 0.1, " 90": 0.1})
    logprobs = tokens_of(
        '<tool_call>\n{"name": "TurnJudgement", "arguments": {"score":',
        score,
        ', "rubrics": [{"score": 7}]}}\n</tool_call>',
    )
    distribution = weigh_score(logprobs, 85)
    assert distribution.status == "ok"
    # 101 is no score; 0.7 on 85, 0.1 on 100, 0.1 on 90
    assert distribution.weighted == round((0.7 * 85 + 0.1 * 100 + 0.1 * 90) / 0.9, 1) == 87.2
    assert distribution.mass == 0.9


@pytest.mark.parametrize(
    ("logprobs", "reason"),
    [
        (None, "no logprobs"),
        ({"content": None, "refusal": None}, "no logprobs"),
        ({"content": []}, "no logprobs"),
        (tokens_of('{"score": ', "8", "0", "}"), "over 2 tokens"),
        (tokens_of('{"score": ', token("80,", 0.9, {"80,": 0.9, "70,": 0.1}), "}"), "no integer"),
        (tokens_of('{"score": ', "75", "}"), "not the sampled 80"),
        (tokens_of('{"score": ', "80.0", "}"), "not written as an integer"),
        (tokens_of('{"analysis": "score 80"}'), "no overall score"),
        (tokens_of('{"a": {"score": 80}, "b": {"score": 80}}'), "no overall score"),
    ],
)
def test_unusable_logprobs_are_unavailable_with_the_reason(logprobs: Any, reason: str) -> None:
    distribution = weigh_score(logprobs, 80)
    assert distribution.status == "unavailable"
    assert distribution.reason is not None and reason in distribution.reason
    assert distribution.weighted is None and distribution.sampled == 80


# --------------------------------------------------------------------------- against the stub


async def test_the_weighted_score_is_recorded_beside_the_sampled_one(stub: OpenAIStub) -> None:
    stub.responder = verdict(80)
    judge = stub_judge(stub, judge_score_weighting="logprobs")
    details = await judge.evaluate_turn(PAYMENT_CASE)

    body = stub.requests[-1]
    assert body["logprobs"] is True and body["top_logprobs"] == TOP_LOGPROBS == 20
    assert details.score == 80  # the stored score stays the sampled one
    distribution = details.score_distribution
    assert distribution is not None and distribution.status == "ok"
    assert distribution.sampled == 80
    assert distribution.weighted == WEIGHTED_80 == round(74.5 / 0.95, 1)
    assert distribution.mass == MASS_80
    stored = validate_details(details.to_json())
    assert stored["score_distribution"] == {
        "status": "ok",
        "sampled": 80.0,
        "weighted": WEIGHTED_80,
        "mass": MASS_80,
    }

    flow = await judge.evaluate_flow(FlowCase("backend", "en", (PAYMENT_CASE,)))
    assert flow.score_distribution is not None and flow.score_distribution.weighted == WEIGHTED_80


async def test_the_stubs_distribution_is_followed(stub: OpenAIStub) -> None:
    stub.responder = verdict(40)
    stub.score_alternatives = {0: 0.5, 20: 0.5}
    details = await stub_judge(stub, judge_score_weighting="logprobs").evaluate_turn(PAYMENT_CASE)
    assert details.score_distribution is not None
    assert details.score_distribution.weighted == 50.0 and details.score_distribution.mass == 1.0


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("none", "the endpoint returned no logprobs for the tool call"),
        ("digits", "the score is written over 2 tokens, not one"),
    ],
)
async def test_without_usable_logprobs_the_sampled_score_stands(
    stub: OpenAIStub, mode: Any, reason: str
) -> None:
    stub.responder = verdict(80)
    stub.logprobs_mode = mode
    details = await stub_judge(stub, judge_score_weighting="logprobs").evaluate_turn(PAYMENT_CASE)
    assert stub.calls == 1  # no retry
    assert details.score == 80
    assert details.score_distribution is not None
    assert details.score_distribution.model_dump(exclude_none=True) == {
        "status": "unavailable",
        "sampled": 80.0,
        "reason": reason,
    }
    validate_details(details.to_json())


async def test_logprobs_are_asked_for_only_when_the_setting_is_on(stub: OpenAIStub) -> None:
    assert JudgeSettings().judge_score_weighting == "none"
    stub.responder = verdict(80)
    details = await stub_judge(stub).evaluate_turn(PAYMENT_CASE)
    body = stub.requests[-1]
    assert "logprobs" not in body and "top_logprobs" not in body
    assert details.score_distribution is None
    assert "score_distribution" not in details.to_json()


async def test_a_jury_records_each_jurors_weighted_score(stub: OpenAIStub) -> None:
    scores = {"judge-a": 60, "judge-b": 80, "judge-c": 100}

    def respond(body: dict[str, Any]) -> dict[str, Any]:
        return verdict(scores[body["model"]])(body)

    stub.responder = respond
    judge = stub_judge(
        stub, judge_models="judge-a,judge-b,judge-c", judge_score_weighting="logprobs"
    )
    details = await judge.evaluate_turn(PAYMENT_CASE)
    assert stub.calls == 3 and all(r["logprobs"] is True for r in stub.requests)
    assert details.score == 80  # the median of the sampled scores
    assert details.score_distribution is None  # not the lead juror's: each juror's below
    assert details.agreement is not None
    weighted = {j.model: j.weighted for j in details.agreement.jurors}
    # 60: (0.6*60 + 0.25*50 + 0.1*70) / 0.95; 100: 110 is no score, so (0.6*100 + 0.25*90) / 0.85
    assert weighted == {
        "judge-a": round(55.5 / 0.95, 1),
        "judge-b": WEIGHTED_80,
        "judge-c": round(82.5 / 0.85, 1),
    }
    validate_details(details.to_json())


async def test_with_logprobs_the_request_is_still_built_once(
    stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The logprobs fields are part of the pre-built template: no per-call build/transform."""
    built = count_schema_builds(monkeypatch)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the judge call went through the SDK's transform or models")

    monkeypatch.setattr(sdk_completions, "async_maybe_transform", refuse)
    monkeypatch.setattr(sdk_base_client, "construct_type", refuse)
    stub.responder = verdict(80)
    monkeypatch.setattr(sdk_base_client.BaseClient, "_build_request", refuse)
    sent = spy_on_posts(monkeypatch)
    client = make_openai_client(
        JudgeSettings(openai_base_url=stub.base_url, llm_model="stub", llm_timeout_s=5.0)
    )
    judge = LLMJudge(client, model_name="stub", score_weighting="logprobs")
    try:
        for turn in (1, 2):
            details = await judge.evaluate_turn(replace(PAYMENT_CASE, turn=turn))
            assert details.score_distribution is not None
            assert details.score_distribution.weighted == WEIGHTED_80
    finally:
        await judge.aclose()
    assert built == [TurnJudgement, FlowJudgement]
    bodies = [json.loads(body) for body in sent]
    assert len(bodies) == 2 and bodies[0]["tools"] == bodies[1]["tools"]
    assert all(b["logprobs"] is True and b["top_logprobs"] == 20 for b in bodies)


async def test_a_wrapped_create_reads_the_logprobs_too(stub: OpenAIStub) -> None:
    """Through `create` (LangSmith tracing) the SDK's reply model carries the same logprobs."""
    stub.responder = verdict(80)
    client = make_openai_client(
        JudgeSettings(openai_base_url=stub.base_url, llm_model="stub", llm_timeout_s=5.0)
    )
    create = client.chat.completions.create
    seen: list[dict[str, Any]] = []

    async def wrapper(**kwargs: Any) -> Any:
        seen.append(kwargs)
        return await create(**kwargs)

    client.chat.completions.create = wrapper  # type: ignore[method-assign]
    judge = LLMJudge(client, model_name="stub", score_weighting="logprobs")
    try:
        details = await judge.evaluate_turn(PAYMENT_CASE)
    finally:
        await judge.aclose()
    assert len(seen) == 1 and seen[0]["logprobs"] is True
    assert details.score_distribution is not None
    assert details.score_distribution.weighted == WEIGHTED_80
