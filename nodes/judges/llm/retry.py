"""The retry policy of LLM calls: which failures are worth another attempt, and when.

One attempt's outcome is classified here (`classify_failure`) and the schedule is tenacity's
(`llm_retrying`): exponential backoff with jitter from `backoff_s`, raised to a server's
Retry-After hint and capped at `MAX_BACKOFF_S`, at most `max_retries` retries.

Retried: transport errors and timeouts, HTTP 408/409/429 and every 5xx, and every reply that
cannot be read as the structured result — whatever shape the malformation takes (a 200
without `choices`, for which the openai SDK raises a bare `TypeError`; a 200 carrying an
error body, which langchain-openai raises as `ValueError`; an empty or missing tool call;
arguments that are not JSON or miss fields). Final at once: any other 4xx (no retry can fix
a refused request), a refusal by the model, and unknown exceptions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random

import openai
from langchain_core.exceptions import ModelError, OutputParserException
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
)

logger = logging.getLogger(__name__)

#: Upper bound of one backoff delay, whatever the attempt number or a Retry-After header says.
MAX_BACKOFF_S = 60.0
#: Relative random jitter added to each backoff delay (never subtracted: delays only grow).
BACKOFF_JITTER = 0.1
#: HTTP statuses worth retrying: request timeout, conflict, rate limit (and every 5xx).
RETRYABLE_STATUS = frozenset({408, 409, 429})

#: Exceptions that mean "the reply could not be read as the result": the request may well
#: succeed next time (sampling, a flaky gateway), so they are retried like invalid output.
#: TypeError/KeyError/AttributeError/IndexError come from client code reading a reply
#: without the fields it expects (e.g. `choices` missing), ValueError from langchain-openai
#: meeting an error body in a 200 reply (and from JSON and pydantic validation).
INVALID_OUTPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValidationError,
    OutputParserException,
    json.JSONDecodeError,
    openai.APIResponseValidationError,
    openai.LengthFinishReasonError,
    openai.ContentFilterFinishReasonError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
)
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    openai.APITimeoutError,
    openai.APIConnectionError,
    asyncio.TimeoutError,
    TimeoutError,
)


class RetryableLLMError(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(self, description: str, retry_after_s: float | None = None) -> None:
        super().__init__(description)
        self.retry_after_s = retry_after_s


class FinalLLMError(Exception):
    """One attempt failed in a way no retry can fix."""


def describe(exc: BaseException) -> str:
    """`Type: first line of the message` (bounded), for logs and error messages."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def server_retry_after_s(exc: BaseException) -> float | None:
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


def classify_failure(exc: BaseException, timeout_s: float) -> Exception:
    """The `RetryableLLMError` or `FinalLLMError` an attempt that raised `exc` stands for."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        text = f"HTTP {status}: {describe(exc)}"
        if status < 500 and status not in RETRYABLE_STATUS:
            return FinalLLMError(f"LLM request refused ({text}); not retried")
        return RetryableLLMError(text, server_retry_after_s(exc))
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return RetryableLLMError(f"timed out after {timeout_s:g}s")
    if isinstance(exc, TRANSPORT_ERRORS):
        return RetryableLLMError(describe(exc))
    if isinstance(exc, ModelError):  # other providers' classified errors (langchain-core)
        if exc.is_retryable:
            return RetryableLLMError(describe(exc))
        return FinalLLMError(f"LLM request failed ({describe(exc)}); not retried")
    if isinstance(exc, INVALID_OUTPUT_ERRORS):
        return RetryableLLMError(f"invalid structured output: {describe(exc)}")
    logger.error("LLM call failed with an unexpected error", exc_info=exc)
    return FinalLLMError(f"LLM call failed: {describe(exc)}")


def llm_retrying(max_retries: int, backoff_s: float) -> AsyncRetrying:
    """Tenacity's loop for one LLM call: retries `RetryableLLMError` only, re-raising the last.

    Use as `async for attempt in llm_retrying(...): with attempt: ...`; the body raises
    `RetryableLLMError` for an attempt worth repeating.
    """

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        failure = outcome.exception() if outcome is not None else None
        hint = failure.retry_after_s if isinstance(failure, RetryableLLMError) else None
        return backoff_delay(backoff_s, state.attempt_number - 1, hint)

    def log(state: RetryCallState) -> None:
        outcome = state.outcome
        failure = outcome.exception() if outcome is not None else None
        logger.info(
            "LLM attempt %d/%d failed (%s); retrying in %.2fs",
            state.attempt_number,
            max_retries + 1,
            failure,
            state.next_action.sleep if state.next_action else 0.0,
        )

    return AsyncRetrying(
        stop=stop_after_attempt(max_retries + 1),
        wait=wait,
        retry=retry_if_exception_type(RetryableLLMError),
        before_sleep=log,
        reraise=True,
    )
