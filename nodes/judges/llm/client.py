"""The one place that talks to an OpenAI-compatible chat model: client set-up and resilient calls.

Both LLM users (the judge and the question generator) need the same discipline, so it lives
here once:
- a bounded number of requests in flight (LLM_MAX_CONCURRENCY), so a submission that fans
  out twenty TURN_EVALs does not trip the provider's rate limit;
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
import time
import weakref
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from langchain_core.exceptions import ModelRefusalError
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import BaseChatOpenAI
from openai import DefaultAioHttpClient
from pydantic import BaseModel, SecretStr, ValidationError

from nodes.judges.details import Usage
from nodes.judges.judge import JudgeError
from nodes.judges.llm.retry import (  # re-exported: the retry policy's public names
    MAX_BACKOFF_S,
    FinalLLMError,
    RetryableLLMError,
    backoff_delay,
    classify_failure,
    describe,
    llm_retrying,
)
from storage.settings import Settings

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_BACKOFF_S",
    "ConcurrencyLimit",
    "LLMConfigurationError",
    "backoff_delay",
    "call_structured",
    "make_chat_model",
    "structured_runnable",
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
# 2. Error handling: with json_schema, langchain-openai calls the SDK's `parse()`, which
#    validates the JSON while reading the HTTP response, so invalid output raises out of the
#    model call *even with include_raw=True*: the raw message and its token usage are lost.
#    With function_calling, invalid arguments come back as `parsing_error` next to the raw
#    AIMessage, so a retried attempt's tokens are still counted.
# Strict tool schemas (strict=True) are not requested for the same reach reason; the
# pydantic model validates every result and an invalid one is retried.
STRUCTURED_OUTPUT_METHOD: Literal["function_calling"] = "function_calling"

class LLMConfigurationError(ValueError):
    """Neither an API key nor a base URL is configured for the LLM."""


def make_chat_model(settings: Settings) -> ChatOpenAI:
    """A `ChatOpenAI` for the configured OpenAI-compatible endpoint.

    Temperature 0 for reproducible grading; the client's own retries are off
    (`max_retries=0`) because `call_structured` retries; streaming is disabled because a
    structured result is useless half-way, and because LangGraph's "messages" stream mode
    would otherwise stream the judge's JSON to clients and (with many non-OpenAI servers)
    lose the token usage.

    Args:
        settings: OPENAI_API_KEY, OPENAI_BASE_URL, LLM_MODEL and LLM_TIMEOUT_S are used.

    Returns:
        The chat model.

    Raises:
        LLMConfigurationError: Neither OPENAI_API_KEY nor OPENAI_BASE_URL is set.
    """
    if settings.openai_api_key is not None:
        api_key = settings.openai_api_key
    elif settings.openai_base_url:
        api_key = SecretStr(PLACEHOLDER_API_KEY)
    else:
        raise LLMConfigurationError(
            "the LLM needs OPENAI_API_KEY (api.openai.com) or OPENAI_BASE_URL "
            "(any OpenAI-compatible server)"
        )
    return ChatOpenAI(
        model=settings.llm_model,
        base_url=settings.openai_base_url or None,
        api_key=api_key,
        temperature=0,
        timeout=settings.llm_timeout_s,
        max_retries=0,
        disable_streaming=True,
        # aiohttp as the transport: with ~100 requests in flight the default httpx pool
        # spends seconds of CPU matching requests to connections (measured: 180 concurrent
        # requests 5.7 s with httpx vs 0.38 s with aiohttp, against a 0.3 s server). The
        # session is created lazily, in the event loop of the first request.
        http_async_client=DefaultAioHttpClient(timeout=settings.llm_timeout_s),
    )


def structured_runnable(
    chat_model: BaseChatModel, schema: type[BaseModel]
) -> Runnable[LanguageModelInput, Any]:
    """`chat_model.with_structured_output(schema, include_raw=True)` with our method choice.

    The method is only passed to OpenAI chat models (other chat models, such as the test
    fakes, have their own single way).
    """
    if isinstance(chat_model, BaseChatOpenAI):
        return chat_model.with_structured_output(
            schema, method=STRUCTURED_OUTPUT_METHOD, include_raw=True
        )
    return chat_model.with_structured_output(schema, include_raw=True)


class ConcurrencyLimit:
    """An `asyncio.Semaphore` of `limit` slots per event loop, shared by one judge's calls.

    A semaphore binds to the loop it first waits in; a judge that outlives one loop (a CLI
    calling `asyncio.run` twice, pytest loops) gets a fresh semaphore in each.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"concurrency limit must be >= 1 (got {limit})")
        self.limit = limit
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._by_loop = weakref.WeakKeyDictionary()

    def semaphore(self) -> asyncio.Semaphore:
        """The semaphore of the running event loop."""
        loop = asyncio.get_running_loop()
        semaphore = self._by_loop.get(loop)
        if semaphore is None:
            semaphore = self._by_loop[loop] = asyncio.Semaphore(self.limit)
        return semaphore


class _UsageTotal:
    """Token usage accumulated over attempts."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.total_tokens = 0
        self.calls = 0

    def add(self, raw: object) -> None:
        metadata = raw.usage_metadata if isinstance(raw, AIMessage) else None
        if metadata:
            self.input_tokens += int(metadata.get("input_tokens", 0))
            self.output_tokens += int(metadata.get("output_tokens", 0))
            self.total_tokens += int(metadata.get("total_tokens", 0))

    def freeze(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            total_tokens=self.total_tokens,
            calls=self.calls,
        )


def _unpack(result: object, schema: type[T]) -> tuple[T | None, object, str | None, bool]:
    """(parsed, raw message, error, whether a retry may help) of one structured result."""
    if isinstance(result, schema):
        return result, None, None, False
    if not isinstance(result, dict):
        return None, None, f"unexpected structured-output result {type(result).__name__}", True
    raw = result.get("raw")
    parsing_error = result.get("parsing_error")
    parsed = result.get("parsed")
    if isinstance(parsing_error, ModelRefusalError):
        # At temperature 0 the same prompt is refused again: retrying only burns tokens.
        return None, raw, f"the model refused: {describe(parsing_error)}", False
    if parsing_error is not None:
        return None, raw, f"invalid structured output: {describe(parsing_error)}", True
    if parsed is None:
        return None, raw, "invalid structured output: the model returned no parsable result", True
    if isinstance(parsed, schema):
        return parsed, raw, None, False
    try:
        return schema.model_validate(parsed), raw, None, False
    except ValidationError as exc:
        return None, raw, f"invalid structured output: {describe(exc)}", True


async def call_structured(
    runnable: Runnable[LanguageModelInput, Any],
    messages: Sequence[BaseMessage],
    *,
    schema: type[T],
    semaphore: asyncio.Semaphore,
    max_retries: int,
    backoff_s: float,
    timeout_s: float,
) -> tuple[T, Usage, float]:
    """Call a structured-output runnable with bounded concurrency, timeouts and retries.

    Each attempt holds a semaphore slot only while its request is in flight (not while it
    backs off) and is cut off after `timeout_s`. What is retried follows
    `nodes.judges.llm.retry`: transport errors and timeouts, 429, 408/409, 5xx, and every
    malformed reply (a `parsing_error`, no parsed result, no `choices`, an error body in a
    200). Final at once: any other HTTP 4xx, a refusal, and unexpected exceptions (still
    raised as `JudgeError`, so one broken evaluation does not abort its siblings in a fan-out).

    Args:
        runnable: From `structured_runnable` (`include_raw=True` output: raw, parsed,
            parsing_error).
        messages: The prompt.
        schema: The pydantic model expected.
        semaphore: Bounds the requests in flight (shared by one judge or generator).
        max_retries: Retries after the first attempt.
        backoff_s: First retry delay; doubles with each retry.
        timeout_s: Limit of one attempt, in seconds.

    Returns:
        The parsed result, the token usage summed over all attempts, and the latency in
        milliseconds from the start of the first attempt to the result.

    Raises:
        JudgeError: The request was refused (non-retryable 4xx) or every attempt failed; the
            message names the last error and `attempts` counts the attempts made.
    """
    usage = _UsageTotal()
    started: float | None = None
    attempts = 0
    try:
        async for attempt in llm_retrying(max_retries, backoff_s):
            with attempt:
                attempts += 1
                async with semaphore:
                    if started is None:
                        started = time.perf_counter()
                    usage.calls += 1
                    try:
                        async with asyncio.timeout(timeout_s):
                            result = await runnable.ainvoke(list(messages))
                    except Exception as exc:
                        raise classify_failure(exc, timeout_s) from exc
                parsed, raw, error, retryable = _unpack(result, schema)
                usage.add(raw)
                if parsed is None:
                    problem = error or "invalid structured output"
                    if retryable:
                        raise RetryableLLMError(problem)
                    raise FinalLLMError(f"LLM call failed: {problem}; not retried")
                latency_ms = (time.perf_counter() - (started or time.perf_counter())) * 1000
                return parsed, usage.freeze(), round(latency_ms, 1)
    except FinalLLMError as exc:  # chained to what the client raised, when it raised
        raise JudgeError(str(exc), attempts=attempts) from (exc.__cause__ or exc)
    except RetryableLLMError as exc:
        raise JudgeError(
            f"LLM call failed after {attempts} attempt{'s' if attempts != 1 else ''}: {exc}",
            attempts=attempts,
        ) from (exc.__cause__ or exc)
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover
