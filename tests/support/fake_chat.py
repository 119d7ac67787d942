"""A scripted chat model for unit tests of structured-output users (judge, question generator).

langchain_core's `GenericFakeChatModel` cannot do `with_structured_output` (its `bind_tools`
is not implemented), so this fake implements `with_structured_output(schema, include_raw=...)`
itself: each call takes the next step of a script — a pydantic result, an invalid output or an
exception to raise — and records the messages it received, so tests can assert on the prompt.

Example:
    >>> model = ScriptedChatModel(script=[BadOutput("no json"), Verdict(score=80)])
    >>> runnable = model.with_structured_output(Verdict, include_raw=True)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, convert_to_messages
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class BadOutput:
    """A response whose structured output is invalid (reported as `parsing_error`)."""

    error: str = "invalid structured output"
    input_tokens: int = 100
    output_tokens: int = 5


@dataclass(frozen=True)
class Reply:
    """A valid structured result with explicit token usage."""

    parsed: BaseModel
    input_tokens: int = 100
    output_tokens: int = 20


@dataclass(frozen=True)
class Slow:
    """Wait `seconds` (asyncio.sleep in async calls), then answer with `then`."""

    seconds: float
    then: Any


#: A step may also be a bare pydantic instance (a Reply with default usage), an exception
#: instance (raised), or a callable(schema, messages) -> step evaluated at call time.
Step = (
    BaseModel | Reply | BadOutput | Slow | BaseException | Callable[[type, list[BaseMessage]], Any]
)


@dataclass
class FakeCall:
    """One call the fake received."""

    schema: type
    messages: list[BaseMessage]
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """All message contents joined (for assertions on the prompt)."""
        return "\n".join(str(m.content) for m in self.messages)


class ScriptedChatModel(BaseChatModel):
    """Chat model whose structured output follows a script, one step per call."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    script: list[Any] = Field(default_factory=list)
    default: Callable[[type, list[BaseMessage]], Any] | None = None
    calls: list[FakeCall] = Field(default_factory=list)
    model_name: str = "fake-model"
    in_flight: int = 0
    max_in_flight: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="fake"))])

    def with_structured_output(  # type: ignore[override]
        self, schema: type, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, Any]:
        def start(value: LanguageModelInput) -> Any:
            messages = _as_messages(value)
            self.calls.append(FakeCall(schema=schema, messages=messages, kwargs=dict(kwargs)))
            return self._next_step(schema, messages)

        def run(value: LanguageModelInput) -> Any:
            step = start(value)
            while isinstance(step, Slow):
                time.sleep(step.seconds)
                step = step.then
            return _respond(step, include_raw)

        async def arun(value: LanguageModelInput) -> Any:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                step = start(value)
                while isinstance(step, Slow):
                    await asyncio.sleep(step.seconds)
                    step = step.then
                return _respond(step, include_raw)
            finally:
                self.in_flight -= 1

        return RunnableLambda(run, afunc=arun)

    def _next_step(self, schema: type, messages: list[BaseMessage]) -> Any:
        if self.script:
            step = self.script.pop(0)
        elif self.default is not None:
            step = self.default
        else:
            raise AssertionError(f"ScriptedChatModel: no scripted response left ({schema})")
        while callable(step) and not isinstance(step, BaseModel | BaseException):
            step = step(schema, messages)
        return step

    def calls_for(self, schema: type) -> list[FakeCall]:
        """The calls made with `schema`."""
        return [c for c in self.calls if c.schema is schema]


def _as_messages(value: LanguageModelInput) -> list[BaseMessage]:
    if isinstance(value, PromptValue):
        return value.to_messages()
    if isinstance(value, str):
        return convert_to_messages([value])
    return convert_to_messages(list(value))


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def _respond(step: Any, include_raw: bool) -> Any:
    if isinstance(step, BaseException):
        raise step
    if isinstance(step, BaseModel):
        step = Reply(step)
    if isinstance(step, Reply):
        raw = AIMessage(content="", usage_metadata=_usage(step.input_tokens, step.output_tokens))
        if not include_raw:
            return step.parsed
        return {"raw": raw, "parsed": step.parsed, "parsing_error": None}
    if isinstance(step, BadOutput):
        raw = AIMessage(
            content="{broken", usage_metadata=_usage(step.input_tokens, step.output_tokens)
        )
        error = ValueError(step.error)
        if not include_raw:
            raise error
        return {"raw": raw, "parsed": None, "parsing_error": error}
    raise TypeError(f"unsupported script step {step!r}")
