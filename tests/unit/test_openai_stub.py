"""Tests for the offline OpenAI-compatible stub (``tests/support/openai_stub.py``).

The stub is driven through the real ``langchain_openai.ChatOpenAI`` client so
that the structured-output code paths used by the pipeline are exercised
end to end, without network access.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from typing import Any, Literal

import httpx
import openai
import pytest
from langchain_core.exceptions import OutputParserException
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field, ValidationError

from tests.support.openai_stub import OpenAIStub, deterministic_score, synthesize_from_schema

Method = Literal["json_schema", "function_calling"]
METHODS: tuple[Method, ...] = ("json_schema", "function_calling")


class Criterion(BaseModel):
    """One rubric criterion."""

    name: str
    score: int = Field(ge=0, le=100)
    level: Literal["weak", "ok", "strong"]


class Verdict(BaseModel):
    """A structured evaluation result."""

    score: int = Field(ge=0, le=100, description="Overall score")
    passed: bool
    feedback: str
    confidence: float = Field(ge=0.0, le=1.0)
    notes: str | None = None
    criteria: list[Criterion]


def make_llm(stub: OpenAIStub, timeout: float = 5.0) -> ChatOpenAI:
    return ChatOpenAI(
        model="stub",
        base_url=stub.base_url,
        api_key="test",
        temperature=0,
        max_retries=0,
        timeout=timeout,
    )


# --------------------------------------------------------------------------- structured output


def test_default_method_is_json_schema(stub: OpenAIStub) -> None:
    make_llm(stub).with_structured_output(Verdict).invoke("Grade: the answer is 42.")
    body = stub.requests[-1]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert "tools" not in body


@pytest.mark.parametrize("method", METHODS)
def test_structured_output_returns_validated_model(stub: OpenAIStub, method: Method) -> None:
    question = "Grade this answer: binary search is O(log n)."
    result = make_llm(stub).with_structured_output(Verdict, method=method).invoke(question)

    assert isinstance(result, Verdict)
    assert result.score == deterministic_score(question)
    assert result.passed is False
    assert result.criteria and all(c.level == "weak" for c in result.criteria)
    assert 0.0 <= result.confidence <= 1.0
    body = stub.requests[-1]
    if method == "function_calling":
        assert body["tools"][0]["function"]["name"] == "Verdict"
        assert body["tool_choice"]["function"]["name"] == "Verdict"
    else:
        assert body["response_format"]["json_schema"]["name"] == "Verdict"


@pytest.mark.asyncio
@pytest.mark.parametrize("method", METHODS)
async def test_include_raw_exposes_usage(stub: OpenAIStub, method: Method) -> None:
    llm = make_llm(stub).with_structured_output(Verdict, method=method, include_raw=True)
    out: dict[str, Any] = await llm.ainvoke("Explain the CAP theorem in two sentences, please.")

    assert out["parsing_error"] is None
    assert isinstance(out["parsed"], Verdict)
    usage = out["raw"].usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    meta = out["raw"].response_metadata
    assert meta["finish_reason"] in {"stop", "tool_calls"}
    assert meta["model_name"] == "stub"


def test_scores_are_reproducible_and_input_dependent(stub: OpenAIStub) -> None:
    structured = make_llm(stub).with_structured_output(Verdict)
    texts = [f"candidate answer #{i}" for i in range(6)]
    first = [structured.invoke(t).score for t in texts]
    second = [structured.invoke(t).score for t in texts]

    assert first == second
    assert len(set(first)) > 1
    assert first == [deterministic_score(t) for t in texts]


# langchain-openai dumps the SDK's ParsedChatCompletion when streaming with
# json_schema, which makes pydantic emit a benign serializer warning upstream.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
@pytest.mark.asyncio
@pytest.mark.parametrize("method", METHODS)
async def test_streaming_structured_output(stub: OpenAIStub, method: Method) -> None:
    structured = make_llm(stub).with_structured_output(Verdict, method=method)
    chunks = [chunk async for chunk in structured.astream("stream me")]

    assert isinstance(chunks[-1], Verdict)
    assert chunks[-1].score == deterministic_score("stream me")
    assert stub.requests[-1]["stream"] is True


def test_plain_chat_and_streaming_usage(stub: OpenAIStub) -> None:
    reply = make_llm(stub).invoke("hello there")
    assert isinstance(reply.content, str) and reply.content
    assert reply.usage_metadata is not None and reply.usage_metadata["total_tokens"] > 0

    streaming = ChatOpenAI(
        model="stub", base_url=stub.base_url, api_key="test", max_retries=0, stream_usage=True
    )
    text, usage = "", None
    for chunk in streaming.stream("hello there"):
        text += str(chunk.content)
        usage = chunk.usage_metadata or usage
    assert text == reply.content
    assert usage is not None and usage["total_tokens"] > 0


def test_responder_overrides_result(stub: OpenAIStub) -> None:
    seen: list[dict[str, Any]] = []

    def responder(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request)
        return {
            "score": 99,
            "passed": True,
            "feedback": "great",
            "confidence": 0.9,
            "notes": None,
            "criteria": [],
        }

    stub.responder = responder
    result = make_llm(stub).with_structured_output(Verdict).invoke("anything")
    assert result == Verdict(
        score=99, passed=True, feedback="great", confidence=0.9, notes=None, criteria=[]
    )
    assert seen and seen[0]["model"] == "stub"


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    "kind, error", [("500", openai.InternalServerError), ("429", openai.RateLimitError)]
)
def test_http_fault_then_recovers(
    stub: OpenAIStub, kind: Literal["500", "429"], error: type
) -> None:
    structured = make_llm(stub).with_structured_output(Verdict)
    stub.add_fault(kind)

    with pytest.raises(error):
        structured.invoke("first")
    assert isinstance(structured.invoke("second"), Verdict)
    assert stub.calls == 2


def test_http_fault_body_is_openai_style(stub: OpenAIStub) -> None:
    stub.add_fault("429")
    response = httpx.post(
        f"{stub.base_url}/chat/completions",
        json={"model": "stub", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 429
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "rate_limit_exceeded"


@pytest.mark.asyncio
async def test_timeout_fault_raises_timeout(stub: OpenAIStub) -> None:
    stub.timeout_sleep_s = 2.0
    stub.add_fault("timeout")
    structured = make_llm(stub, timeout=0.5).with_structured_output(Verdict)

    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await structured.ainvoke("slow one")
    assert time.monotonic() - started < 1.9
    assert isinstance(await structured.ainvoke("fast one"), Verdict)


@pytest.mark.parametrize("method", METHODS)
def test_malformed_fault_fails_parsing(stub: OpenAIStub, method: Method) -> None:
    structured = make_llm(stub).with_structured_output(Verdict, method=method)
    stub.add_fault("malformed")
    with pytest.raises((ValidationError, OutputParserException)):
        structured.invoke("broken")
    assert isinstance(structured.invoke("healthy"), Verdict)


def test_malformed_fault_with_include_raw(stub: OpenAIStub) -> None:
    # function_calling: langchain's parser reports the error in "parsing_error".
    tools = make_llm(stub).with_structured_output(
        Verdict, method="function_calling", include_raw=True
    )
    stub.add_fault("malformed")
    out = tools.invoke("broken")
    assert out["parsed"] is None and out["parsing_error"] is not None

    # json_schema: the openai SDK validates while parsing the HTTP response, so the
    # error propagates even with include_raw=True (same as against the real API).
    schema = make_llm(stub).with_structured_output(Verdict, include_raw=True)
    stub.add_fault("malformed")
    with pytest.raises(ValidationError):
        schema.invoke("broken")


def test_match_only_faults_matching_requests(stub: OpenAIStub) -> None:
    structured = make_llm(stub).with_structured_output(Verdict)
    stub.add_fault("500", times=None, match="POISON")

    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            structured.invoke("this contains POISON")
        assert isinstance(structured.invoke("this is fine"), Verdict)

    stub.clear_faults()
    assert isinstance(structured.invoke("this contains POISON"), Verdict)


def test_fault_times_counts_down(stub: OpenAIStub) -> None:
    structured = make_llm(stub).with_structured_output(Verdict)
    stub.add_fault("500", times=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            structured.invoke("q")
    assert isinstance(structured.invoke("q"), Verdict)
    with pytest.raises(ValueError):
        stub.add_fault("boom")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- concurrency / stats


@pytest.mark.asyncio
async def test_concurrent_requests_overlap(stub: OpenAIStub) -> None:
    stub.latency_s = 0.2
    structured = make_llm(stub).with_structured_output(Verdict)

    results = await asyncio.gather(*(structured.ainvoke(f"q{i}") for i in range(16)))

    assert all(isinstance(r, Verdict) for r in results)
    assert stub.calls == 16
    assert len(stub.requests) == 16
    assert stub.max_concurrency >= 12


@pytest.mark.asyncio
async def test_raw_concurrency_reaches_32(stub: OpenAIStub) -> None:
    stub.latency_s = 0.3
    body = {"model": "stub", "messages": [{"role": "user", "content": "hi"}]}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=stub.base_url, limits=limits, timeout=10) as client:
        responses = await asyncio.gather(
            *(client.post("/chat/completions", json=body) for _ in range(32))
        )
    assert all(r.status_code == 200 for r in responses)
    assert stub.max_concurrency == 32


def test_reset_stats(stub: OpenAIStub) -> None:
    make_llm(stub).invoke("x")
    assert stub.calls == 1 and stub.max_concurrency == 1 and len(stub.requests) == 1
    stub.reset_stats()
    assert stub.calls == 0 and stub.max_concurrency == 0 and stub.requests == []


def test_stop_does_not_wait_for_hung_requests() -> None:
    stub = OpenAIStub().start()
    stub.add_fault("timeout")  # would sleep 30 s
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(
                f"{stub.base_url}/chat/completions",
                json={"model": "stub", "messages": [{"role": "user", "content": "x"}]},
                timeout=20,
            )
        except httpx.HTTPError as exc:  # the server may drop the connection on shutdown
            errors.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 5
    while stub.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    stub.stop()
    worker.join(timeout=10)
    assert time.monotonic() - started < 5
    assert not worker.is_alive()
    with pytest.raises(RuntimeError):
        _ = stub.base_url


# --------------------------------------------------------------------------- schema synthesis


def test_synthesize_resolves_refs_and_constraints() -> None:
    schema = Verdict.model_json_schema()
    value = synthesize_from_schema(schema, "seed")
    verdict = Verdict.model_validate(value)
    assert verdict.score == deterministic_score("seed")
    assert 1 <= len(verdict.criteria) <= 2
    assert synthesize_from_schema(schema, "seed") == value

    assert synthesize_from_schema({"type": "integer", "minimum": 5, "maximum": 9}) == 7
    assert synthesize_from_schema({"type": "integer", "exclusiveMinimum": 10}) == 11
    assert synthesize_from_schema({"enum": ["b", "a"]}) == "b"
    assert synthesize_from_schema({"type": ["null", "boolean"]}) is False
    assert len(synthesize_from_schema({"type": "string", "minLength": 40})) >= 40
    items = synthesize_from_schema({"type": "array", "items": {"type": "string"}, "minItems": 3})
    assert len(items) == 3


# --------------------------------------------------------------------------- logprobs


def _verdict_call(stub: OpenAIStub, **extra: Any) -> dict[str, Any]:
    """A raw tool-call request for `Verdict` (extra request fields added); its choice."""
    function = {"name": "Verdict", "parameters": Verdict.model_json_schema()}
    tool = {"type": "function", "function": function}
    response = httpx.post(
        f"{stub.base_url}/chat/completions",
        json={
            "model": "stub",
            "messages": [{"role": "user", "content": "grade this"}],
            "tools": [tool],
            "tool_choice": {"type": "function", "function": {"name": "Verdict"}},
            **extra,
        },
        timeout=5,
    )
    response.raise_for_status()
    choice: dict[str, Any] = response.json()["choices"][0]
    return choice


def test_logprobs_only_when_asked_and_they_spell_the_tool_call(stub: OpenAIStub) -> None:
    assert _verdict_call(stub)["logprobs"] is None  # the default reply is unchanged

    choice = _verdict_call(stub, logprobs=True, top_logprobs=5)
    arguments = choice["message"]["tool_calls"][0]["function"]["arguments"]
    content = choice["logprobs"]["content"]
    assert "".join(t["token"] for t in content) == arguments
    assert all(bytes(t["bytes"]) == t["token"].encode() for t in content)
    score = json.loads(arguments)["score"]
    uncertain = [t for t in content if t["logprob"] != 0.0]
    assert [t["token"] for t in uncertain] == [str(score)]  # only the top-level score's token
    options = {o["token"]: math.exp(o["logprob"]) for o in uncertain[0]["top_logprobs"]}
    assert len(options) <= 5
    assert options[str(score)] == pytest.approx(0.6)
    expected = {str(score + d): p for d, p in {-10: 0.25, 10: 0.1}.items() if 0 <= score + d <= 100}
    assert {k: v for k, v in options.items() if k in expected} == pytest.approx(expected)


def test_logprobs_modes_digits_and_none(stub: OpenAIStub) -> None:
    stub.responder = lambda body: {
        "score": 85,
        "passed": True,
        "feedback": "ok",
        "confidence": 0.5,
        "criteria": [],
    }
    stub.logprobs_mode = "digits"
    content = _verdict_call(stub, logprobs=True, top_logprobs=3)["logprobs"]["content"]
    assert [t["token"] for t in content if t["token"].isdigit()] == ["8", "5", "0", "5"]
    stub.logprobs_mode = "none"
    assert _verdict_call(stub, logprobs=True)["logprobs"] == {"content": None, "refusal": None}
