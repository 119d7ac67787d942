"""The one place that talks to an OpenAI-compatible chat model: client set-up and resilient calls.

Both LLM users (the judge and the question generator) need the same discipline, so it lives
here once:
- a bounded number of requests in flight (LLM_MAX_CONCURRENCY), so a submission that fans
  out twenty TURN_EVALs does not trip the provider's rate limit;
- our own retries with exponential backoff (the client's retries are switched off so the
  attempt count, the backoff and the error reported are ours and testable), on transport
  errors, timeouts, 429, 5xx *and* invalid structured output, but never on other 4xx, which
  no retry can fix;
- token usage summed over every attempt (a retried evaluation costs more, and that should be
  visible in `details.usage`) and the latency of the whole call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import weakref
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

import openai
from langchain_core.exceptions import ModelError, ModelRefusalError, OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import BaseChatOpenAI
from openai import DefaultAioHttpClient
from pydantic import BaseModel, SecretStr, ValidationError

from nodes.judges.details import Usage
from nodes.judges.judge import JudgeError
from storage.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)

#: API key sent when only a base URL is configured: local OpenAI-compatible servers (vLLM,
#: Ollama, llama.cpp, LM Studio) ignore it, but the openai client refuses an empty one.
PLACEHOLDER_API_KEY = "not-needed"
#: Upper bound of one backoff delay, whatever the attempt number or a Retry-After header says.
MAX_BACKOFF_S = 60.0
#: Relative random jitter added to each backoff delay (never subtracted: delays only grow).
BACKOFF_JITTER = 0.1

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

_INVALID_OUTPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValidationError,
    OutputParserException,
    json.JSONDecodeError,
    openai.APIResponseValidationError,
    openai.LengthFinishReasonError,
    openai.ContentFilterFinishReasonError,
)
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    openai.APITimeoutError,
    openai.APIConnectionError,
    asyncio.TimeoutError,
    TimeoutError,
)
#: HTTP statuses worth retrying: request timeout, conflict, rate limit (and every 5xx).
_RETRYABLE_STATUS = frozenset({408, 409, 429})


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


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _retry_after_s(exc: BaseException) -> float | None:
    """The server's Retry-After hint of a 429/503, in seconds, if it sent one."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def backoff_delay(backoff_s: float, attempt: int, retry_after_s: float | None = None) -> float:
    """Delay before retry number `attempt + 1`: `backoff_s * 2**attempt`, plus jitter.

    A server's Retry-After hint raises the delay (never lowers it); `MAX_BACKOFF_S` caps it.
    """
    delay = backoff_s * (2.0**attempt)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    delay *= 1 + random.uniform(0, BACKOFF_JITTER)
    return min(delay, MAX_BACKOFF_S)


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
        return None, raw, f"the model refused: {_describe(parsing_error)}", False
    if parsing_error is not None:
        return None, raw, f"invalid structured output: {_describe(parsing_error)}", True
    if parsed is None:
        return None, raw, "invalid structured output: the model returned no parsable result", True
    if isinstance(parsed, schema):
        return parsed, raw, None, False
    try:
        return schema.model_validate(parsed), raw, None, False
    except ValidationError as exc:
        return None, raw, f"invalid structured output: {_describe(exc)}", True


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
    backs off) and is cut off after `timeout_s`. Retried: transport errors and timeouts, 429,
    408/409, 5xx, and invalid structured output (a `parsing_error` or no parsed result).
    Final at once: any other HTTP 4xx, a refusal, and unexpected exceptions (still raised as
    `JudgeError`, so one broken evaluation does not abort its siblings in a fan-out).

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
    attempts = max_retries + 1
    usage = _UsageTotal()
    started: float | None = None
    last_error = "no attempt made"
    retry_after: float | None = None
    for attempt in range(attempts):
        if attempt:
            delay = backoff_delay(backoff_s, attempt - 1, retry_after)
            logger.info(
                "LLM attempt %d/%d failed (%s); retrying in %.2fs",
                attempt, attempts, last_error, delay,
            )
            await asyncio.sleep(delay)
        retry_after = None
        async with semaphore:
            if started is None:
                started = time.perf_counter()
            usage.calls += 1
            try:
                async with asyncio.timeout(timeout_s):
                    result = await runnable.ainvoke(list(messages))
            except openai.APIStatusError as exc:
                status = exc.status_code
                last_error = f"HTTP {status}: {_describe(exc)}"
                if status < 500 and status not in _RETRYABLE_STATUS:
                    raise JudgeError(
                        f"LLM request refused ({last_error}); not retried",
                        attempts=attempt + 1,
                    ) from exc
                retry_after = _retry_after_s(exc)
                continue
            except _TRANSPORT_ERRORS as exc:
                if isinstance(exc, TimeoutError | asyncio.TimeoutError):
                    last_error = f"timed out after {timeout_s:g}s"
                else:
                    last_error = _describe(exc)
                continue
            except _INVALID_OUTPUT_ERRORS as exc:
                last_error = f"invalid structured output: {_describe(exc)}"
                continue
            except ModelError as exc:  # other providers' classified errors (langchain-core)
                last_error = _describe(exc)
                if not exc.is_retryable:
                    raise JudgeError(
                        f"LLM request failed ({last_error}); not retried", attempts=attempt + 1
                    ) from exc
                continue
            except Exception as exc:
                # Unknown failures are not retried, but still surface as JudgeError so one
                # broken evaluation does not abort its siblings in a fan-out.
                logger.exception("LLM call failed with an unexpected error")
                raise JudgeError(
                    f"LLM call failed: {_describe(exc)}", attempts=attempt + 1
                ) from exc
        parsed, raw, error, retryable = _unpack(result, schema)
        usage.add(raw)
        if parsed is not None:
            latency_ms = (time.perf_counter() - (started or time.perf_counter())) * 1000
            return parsed, usage.freeze(), round(latency_ms, 1)
        last_error = error or "invalid structured output"
        if not retryable:
            raise JudgeError(f"LLM call failed: {last_error}; not retried", attempts=attempt + 1)
    raise JudgeError(
        f"LLM call failed after {attempts} attempt{'s' if attempts != 1 else ''}: {last_error}",
        attempts=attempts,
    )
