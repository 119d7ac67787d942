"""The LLM retry policy (tenacity): every malformed reply is retried like invalid output.

The malformed shapes are served over real HTTP by the local OpenAI-compatible stub and read
by the real `ChatOpenAI` client, so what is retried is what the SDK actually raises (a 200
without `choices` makes the openai SDK fail with a bare `TypeError`).
"""

from __future__ import annotations

import time

import openai
import pytest

from nodes.judges.judge import JudgeError
from nodes.judges.llm.retry import (
    MAX_BACKOFF_S,
    FinalLLMError,
    RetryableLLMError,
    backoff_delay,
    classify_failure,
)
from tests.support.openai_stub import FaultKind, OpenAIStub
from tests.support.stub_judge import PAYMENT_CASE, stub_judge

CASE = PAYMENT_CASE
MALFORMED: list[FaultKind] = ["no_choices", "empty_tool_call", "error_body", "malformed"]


@pytest.mark.parametrize("kind", MALFORMED)
async def test_each_malformed_reply_is_retried_and_usage_summed(
    stub: OpenAIStub, kind: FaultKind
) -> None:
    stub.add_fault(kind, times=1)
    details = await stub_judge(stub).evaluate_turn(CASE)
    assert stub.calls == 2
    assert details.usage is not None and details.usage.calls == 2
    assert 0 <= details.score <= 100


@pytest.mark.parametrize("kind", MALFORMED)
async def test_a_malformed_reply_every_time_is_a_judge_error_after_all_attempts(
    stub: OpenAIStub, kind: FaultKind
) -> None:
    stub.add_fault(kind, times=None)
    with pytest.raises(JudgeError) as raised:
        await stub_judge(stub).evaluate_turn(CASE)
    assert raised.value.attempts == 3 and stub.calls == 3
    assert "after 3 attempts" in str(raised.value)


async def test_retry_after_is_honoured(stub: OpenAIStub) -> None:
    stub.retry_after_s = 0.4
    stub.add_fault("429", times=1)
    began = time.perf_counter()
    await stub_judge(stub, llm_backoff_s=0.001).evaluate_turn(CASE)
    assert time.perf_counter() - began >= 0.4
    assert stub.calls == 2


async def test_a_refused_request_is_not_retried(stub: OpenAIStub) -> None:
    failing = stub_judge(stub, openai_base_url=stub.base_url.replace("/v1", "/nowhere"))
    with pytest.raises(JudgeError) as raised:
        await failing.evaluate_turn(CASE)
    assert raised.value.attempts == 1 and "not retried" in str(raised.value)


def test_classification() -> None:
    assert isinstance(classify_failure(TypeError("'NoneType' object"), 1.0), RetryableLLMError)
    assert isinstance(classify_failure(ValueError({"message": "x"}), 1.0), RetryableLLMError)
    assert isinstance(classify_failure(TimeoutError(), 1.0), RetryableLLMError)
    assert isinstance(classify_failure(RuntimeError("bug"), 1.0), FinalLLMError)


def test_retry_after_raises_the_delay_but_the_cap_holds() -> None:
    assert backoff_delay(0.01, 0, retry_after_s=2.0) >= 2.0
    assert backoff_delay(0.01, 0, retry_after_s=3600.0) == MAX_BACKOFF_S
    assert backoff_delay(1.0, 30) == MAX_BACKOFF_S
    assert issubclass(openai.APITimeoutError, openai.APIConnectionError)
