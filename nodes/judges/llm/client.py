"""The one place that talks to an OpenAI-compatible chat model: clients and resilient calls.

Clients: `make_openai_client` (the openai SDK on the aiohttp transport: the judge's hot path
sends through `nodes.judges.llm.transport.ChatCompletions`, built from it, or through its
`create` when it is wrapped for LangSmith, LANGSMITH_TRACING=true) and `make_chat_model` (a
`ChatOpenAI`, for the question generator's few calls per interview). `structured_call` turns
either into one request built once per schema (`nodes.judges.llm.structured`).

Both LLM users (the judge and the question generator) need the same discipline, so it lives
here once (`call_structured`):
- a bounded, adaptive number of requests in flight (LLM_MAX_CONCURRENCY, halved on 429:
  `nodes.judges.llm.limiter`), so a submission that fans out twenty TURN_EVALs does not trip
  the provider's rate limit;
- our own retries with exponential backoff (the client's retries are switched off so the
  attempt count, the backoff and the error reported are ours and testable), on transport
  errors, timeouts, 429, 5xx *and* every malformed reply, but never on other 4xx, which no
  retry can fix: the policy is `nodes.judges.llm.retry` (tenacity);
- token usage summed over every attempt (a retried evaluation costs more, and that should be
  visible in `details.usage`) and the latency of the whole call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from typing import Literal, TypeVar

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import BaseChatOpenAI
from openai import AsyncOpenAI, DefaultAioHttpClient
from pydantic import BaseModel, SecretStr

from nodes.judges.details import ScoreDistribution, Usage
from nodes.judges.judge import JudgeError
from nodes.judges.llm.limiter import AdaptiveLimiter, ConcurrencyLimit
from nodes.judges.llm.retry import (  # re-exported: the retry policy's public names
    MAX_BACKOFF_S,
    FinalLLMError,
    RetryableLLMError,
    backoff_delay,
    classify_failure,
    describe,
    llm_retrying,
)
from nodes.judges.llm.structured import ChatModelCall, StructuredCall, ToolCall
from nodes.judges.llm.transport import ChatCompletions
from nodes.judges.settings import JudgeSettings

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_BACKOFF_S",
    "ConcurrencyLimit",
    "LLMConfigurationError",
    "backoff_delay",
    "call_structured",
    "describe",
    "make_chat_model",
    "make_endpoint_client",
    "make_openai_client",
    "structured_call",
]

T = TypeVar("T", bound=BaseModel)

#: API key sent when only a base URL is configured: local OpenAI-compatible servers (vLLM,
#: Ollama, llama.cpp, LM Studio) ignore it, but the openai client refuses an empty one.
PLACEHOLDER_API_KEY = "not-needed"

# Structured-output method: "function_calling", deliberately, although the installed
# ChatOpenAI (langchain-openai 1.7) defaults to "json_schema". Two reasons:
# 1. Reach: tool calling with a named tool_choice is the structured-output mechanism that
#    OpenAI-compatible servers implement most widely (vLLM, Ollama, llama.cpp, LM Studio,
#    most gateways); strict `response_format: json_schema` is newer and often missing or
#    partial, and strict mode also rejects schemas with free-form keys or optional fields.
# 2. Error handling: with json_schema, the SDK's `parse()` validates the JSON while reading
#    the HTTP response, so invalid output raises out of the model call: the reply and its
#    token usage are lost. With a tool call, invalid arguments are validated by us next to
#    the reply, so a retried attempt's tokens are still counted.
# Strict tool schemas (strict=True) are not requested for the same reach reason; the
# pydantic model validates every result and an invalid one is retried.
STRUCTURED_OUTPUT_METHOD: Literal["function_calling"] = "function_calling"


class LLMConfigurationError(ValueError):
    """Neither an API key nor a base URL is configured for the LLM."""


def make_chat_model(settings: JudgeSettings) -> ChatOpenAI:
    """A `ChatOpenAI` for the configured OpenAI-compatible endpoint.

    Temperature 0 for reproducible grading; the client's own retries are off
    (`max_retries=0`) because `call_structured` retries; streaming is disabled because a
    structured result is useless half-way, and because LangGraph's "messages" stream mode
    would otherwise stream the judge's JSON to clients and (with many non-OpenAI servers)
    lose the token usage. Used by the question generator; the judge calls the SDK directly.

    Args:
        settings: OPENAI_API_KEY, OPENAI_BASE_URL, LLM_MODEL and LLM_TIMEOUT_S are used.

    Returns:
        The chat model.

    Raises:
        LLMConfigurationError: Neither OPENAI_API_KEY nor OPENAI_BASE_URL is set.
    """
    return ChatOpenAI(
        model=settings.llm_model,
        base_url=settings.openai_base_url or None,
        api_key=_api_key(settings),
        temperature=0,
        timeout=settings.llm_timeout_s,
        max_retries=0,
        disable_streaming=True,
        # aiohttp as the transport, for the reason given in `make_openai_client`.
        http_async_client=DefaultAioHttpClient(timeout=settings.llm_timeout_s),
    )


def _api_key(settings: JudgeSettings) -> SecretStr:
    """The configured API key, the placeholder for a keyless local server, or an error."""
    if settings.openai_api_key is not None:
        return settings.openai_api_key
    if settings.openai_base_url:
        return SecretStr(PLACEHOLDER_API_KEY)
    raise LLMConfigurationError(
        "the LLM needs OPENAI_API_KEY (api.openai.com) or OPENAI_BASE_URL "
        "(any OpenAI-compatible server)"
    )


def tracing_enabled() -> bool:
    """LANGSMITH_TRACING (or the older LANGCHAIN_TRACING_V2) is "true"."""
    flag = os.environ.get("LANGSMITH_TRACING") or os.environ.get("LANGCHAIN_TRACING_V2") or ""
    return flag.strip().lower() == "true"


def make_openai_client(settings: JudgeSettings) -> AsyncOpenAI:
    """The openai SDK client of the judge: no SDK retries (ours are), aiohttp transport.

    aiohttp rather than the default httpx: with ~100 requests in flight the httpx pool spends
    seconds of CPU matching requests to connections (measured: 180 concurrent requests 5.7 s
    with httpx vs 0.38 s with aiohttp, against a 0.3 s server). Its session is created lazily,
    in the event loop of the first request. With LANGSMITH_TRACING=true the client is wrapped
    by `langsmith.wrappers.wrap_openai`, so every judge call is a LangSmith run.

    Raises:
        LLMConfigurationError: Neither OPENAI_API_KEY nor OPENAI_BASE_URL is set.
    """
    return _sdk_client(settings.openai_base_url or None, _api_key(settings), settings)


def make_endpoint_client(settings: JudgeSettings, endpoint: str) -> AsyncOpenAI:
    """The SDK client of a jury endpoint (JUDGE_MODELS `model@endpoint`), as the judge's own.

    Its key is the endpoint's JUDGE_API_KEYS entry, else the placeholder of keyless local
    servers (never OPENAI_API_KEY: see `JudgeSettings.endpoint_api_key`).
    """
    key = settings.endpoint_api_key(endpoint) or SecretStr(PLACEHOLDER_API_KEY)
    return _sdk_client(endpoint, key, settings)


def _sdk_client(base_url: str | None, api_key: SecretStr, settings: JudgeSettings) -> AsyncOpenAI:
    client = AsyncOpenAI(
        api_key=api_key.get_secret_value(),
        base_url=base_url,
        timeout=settings.llm_timeout_s,
        max_retries=0,
        http_client=DefaultAioHttpClient(timeout=settings.llm_timeout_s),
    )
    if tracing_enabled():
        from langsmith.wrappers import wrap_openai  # only traced processes pay for it

        client = wrap_openai(client)
    return client


def structured_call(
    model: AsyncOpenAI | BaseChatModel,
    schema: type[T],
    model_name: str,
    temperature: float = 0,
    reuse: StructuredCall[T] | None = None,
    logprobs: bool = False,
    completions: ChatCompletions | None = None,
) -> StructuredCall[T]:
    """One structured-output request for `schema`, built now and reused by every call.

    Args:
        model: The openai SDK client (the lean path) or any langchain chat model.
        schema: The pydantic model of the result (sent as the tool's parameters).
        model_name: The model requested from the SDK client (chat models know their own).
        temperature: Sampling temperature of the SDK request (chat models keep their own).
        reuse: A call built for another juror of the same schema: its tool schema is shared
            (SDK), or the call itself is returned (a chat model cannot switch models).
        logprobs: Ask the SDK request for token logprobs and weigh the overall score by
            them (JUDGE_SCORE_WEIGHTING=logprobs); a langchain chat model ignores it.
        completions: The SDK client's endpoint (`ChatCompletions(model)`), shared by the
            calls to one server and closed by its owner; a chat model ignores it.
    """
    if isinstance(model, AsyncOpenAI):
        tool = reuse.tool if isinstance(reuse, ToolCall) else None
        return ToolCall(model, model_name, schema, temperature, tool, logprobs, completions)
    if reuse is not None:
        return reuse
    method = STRUCTURED_OUTPUT_METHOD if isinstance(model, BaseChatOpenAI) else None
    return ChatModelCall(model, schema, method)


async def call_structured(
    call: StructuredCall[T],
    messages: Sequence[BaseMessage],
    *,
    limiter: AdaptiveLimiter,
    max_retries: int,
    backoff_s: float,
    timeout_s: float,
) -> tuple[T, Usage, float, ScoreDistribution | None]:
    """Make a structured call with bounded concurrency, timeouts and retries.

    Each attempt holds a limiter slot only while its request is in flight (not while it
    backs off) and is cut off after `timeout_s`; a 429 shrinks the limiter's window. What is
    retried follows `nodes.judges.llm.retry`: transport errors and timeouts, 429, 408/409,
    5xx, and every malformed reply (no `choices`, an error body in a 200, no tool call,
    arguments that are not JSON or fail validation). Final at once: any other HTTP 4xx, a
    refusal, and unexpected exceptions (still raised as `JudgeError`, so one broken
    evaluation does not abort its siblings in a fan-out).

    Args:
        call: From `structured_call` (one attempt: the request and reading its reply).
        messages: The prompt.
        limiter: Bounds the requests in flight (shared by one judge or generator).
        max_retries: Retries after the first attempt.
        backoff_s: First retry delay; doubles with each retry.
        timeout_s: Limit of one attempt, in seconds.

    Returns:
        The parsed result, the token usage summed over all attempts, the latency in
        milliseconds from the start of the first attempt to the result, and the
        successful attempt's score distribution (None unless logprobs were requested).

    Raises:
        JudgeError: The request was refused (non-retryable 4xx) or every attempt failed; the
            message names the last error and `attempts` counts the attempts made.
    """
    tokens = [0, 0, 0]
    started: float | None = None
    attempts = 0
    try:
        async for attempt in llm_retrying(max_retries, backoff_s):
            with attempt:
                attempts += 1
                async with limiter as slot:
                    if started is None:
                        started = time.perf_counter()
                    try:
                        async with asyncio.timeout(timeout_s):
                            outcome = await call(messages)
                    except Exception as exc:
                        if isinstance(exc, openai.RateLimitError):
                            failure = classify_failure(exc, timeout_s)
                            slot.rate_limited(getattr(failure, "retry_after_s", None))
                            raise failure from exc
                        raise classify_failure(exc, timeout_s) from exc
                    slot.succeeded()
                tokens[0] += outcome.input_tokens
                tokens[1] += outcome.output_tokens
                tokens[2] += outcome.total_tokens
                if outcome.parsed is None:
                    problem = outcome.error or "invalid structured output"
                    if outcome.retryable:
                        raise RetryableLLMError(problem)
                    raise FinalLLMError(f"LLM call failed: {problem}; not retried")
                latency_ms = (time.perf_counter() - (started or time.perf_counter())) * 1000
                usage = Usage(
                    input_tokens=tokens[0],
                    output_tokens=tokens[1],
                    total_tokens=tokens[2],
                    calls=attempts,
                )
                return outcome.parsed, usage, round(latency_ms, 1), outcome.distribution
    except FinalLLMError as exc:  # chained to what the client raised, when it raised
        raise JudgeError(str(exc), attempts=attempts) from (exc.__cause__ or exc)
    except RetryableLLMError as exc:
        raise JudgeError(
            f"LLM call failed after {attempts} attempt{'s' if attempts != 1 else ''}: {exc}",
            attempts=attempts,
        ) from (exc.__cause__ or exc)
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover
