"""The LLM judge against the local OpenAI-compatible stub: settings, a judge, shared fixtures.

Every test of the real LLM path needs the same three things: a stub server per module, the
same stub reset between tests (faults, latency, responder, statistics), and settings that
point the judge at it with short retries. They live here once; tests/conftest.py loads
this module as a plugin, so every test can ask for `stub` (or `openai_stub`).

A judge made by `stub_judge` is closed when its test's `stub` fixture ends: its aiohttp
session would otherwise be garbage-collected open ("Unclosed client session" at exit).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from api.settings import Settings
from nodes.judges.judge import TurnCase
from nodes.judges.llm.judge import LLMJudge
from nodes.judges.llm.prompts import FLOW_CRITERIA, TURN_CRITERIA
from nodes.judges.llm.transport import ChatCompletions
from tests.support.openai_stub import DEFAULT_SCORE_ALTERNATIVES, OpenAIStub

#: A short English answer to a bank-like question: one call's worth of work for the stub.
PAYMENT_CASE = TurnCase(
    position="backend",
    language="en",
    turn=1,
    question="How would you make a payment endpoint safe to retry?",
    answer="An idempotency key with a unique index and INSERT ... ON CONFLICT.",
    category="design",
)


def criteria_of(body: dict[str, Any]) -> tuple[str, ...]:
    """The criteria a stub request asks the model to score: the flow's or a turn's."""
    flow = body["tool_choice"]["function"]["name"] == "FlowJudgement"
    return FLOW_CRITERIA if flow else TURN_CRITERIA


def verdict(score: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A stub responder: a complete judgement scoring `score` overall (criteria 55, 56, ...)."""

    def respond(body: dict[str, Any]) -> dict[str, Any]:
        return {
            "rubrics": [
                {"criterion": n, "evidence": [], "reason": f"on {n}", "score": 55 + i}
                for i, n in enumerate(criteria_of(body))
            ],
            "strengths": ["clear"],
            "improvements": [],
            "keywords": ["idempotency"],
            "flags": [],
            "analysis": "a sound answer",
            "score": score,
            "feedback": "good",
        }

    return respond


#: Fast retries and a bounded attempt time: a fault costs milliseconds, a hang 5 s at most.
STUB_DEFAULTS: dict[str, Any] = {
    "llm_model": "stub",
    "llm_max_retries": 2,
    "llm_backoff_s": 0.01,
    "llm_timeout_s": 5.0,
}


def stub_settings(stub: OpenAIStub, **overrides: Any) -> Settings:
    """Settings whose LLM endpoint is `stub` (STUB_DEFAULTS, then `overrides`)."""
    return Settings(**{"openai_base_url": stub.base_url, **STUB_DEFAULTS, **overrides})


#: Judges made for each stub during the current test, closed by the `stub` fixture.
_OPEN: dict[OpenAIStub, list[LLMJudge]] = {}


def stub_judge(stub: OpenAIStub, **overrides: Any) -> LLMJudge:
    """`LLMJudge.from_settings` on `stub_settings` (the openai SDK client, no guard)."""
    judge = LLMJudge.from_settings(stub_settings(stub, **overrides))
    _OPEN.setdefault(stub, []).append(judge)
    return judge


async def close_judges(stub: OpenAIStub) -> None:
    """Close every judge `stub_judge` made for `stub`."""
    for judge in _OPEN.pop(stub, []):
        await judge.aclose()


def count_schema_builds(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The schemas turned into tool schemas from now on (to check each is built once)."""
    from nodes.judges.llm import structured

    built: list[object] = []
    convert = structured.convert_to_openai_tool

    def counting(schema: Any) -> dict[str, Any]:
        built.append(schema)
        return convert(schema)

    monkeypatch.setattr(structured, "convert_to_openai_tool", counting)
    return built


def reset(stub: OpenAIStub) -> None:
    """Back to a healthy, instant stub with empty statistics."""
    stub.clear_faults()
    stub.latency_s = 0.0
    stub.timeout_sleep_s = 30.0
    stub.retry_after_s = None
    stub.responder = None
    stub.logprobs_mode = "tokens"
    stub.score_alternatives = dict(DEFAULT_SCORE_ALTERNATIVES)
    stub.reset_stats()


@pytest.fixture(scope="module")
def openai_stub() -> Iterator[OpenAIStub]:
    """One stub server per test module."""
    with OpenAIStub() as server:
        yield server


@pytest.fixture
async def stub(openai_stub: OpenAIStub) -> AsyncIterator[OpenAIStub]:
    """The module's stub, reset before and after the test; the test's judges closed after."""
    reset(openai_stub)
    yield openai_stub
    await close_judges(openai_stub)
    reset(openai_stub)


def spy_on_posts(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies every judge sends through `ChatCompletions.post` from now on (still sent)."""
    sent: list[bytes] = []
    post = ChatCompletions.post

    async def spy(self: ChatCompletions, body: bytes) -> bytes:
        sent.append(body)
        return await post(self, body)

    monkeypatch.setattr(ChatCompletions, "post", spy)
    return sent
