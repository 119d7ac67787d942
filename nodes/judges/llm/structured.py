"""One structured-output attempt: a prompt in, a validated pydantic result (or why not) out.

Two ways to make the attempt, behind one callable shape (`StructuredCall`):
- `ToolCall`, the judge's hot path: the tool schema and every constant request field are built
  once, when the judge is built, and serialised once; each request is those bytes plus the
  prompt's, POSTed by `nodes.judges.llm.transport.ChatCompletions` (aiohttp, the SDK client's
  URL, headers and exceptions). With LangSmith tracing the SDK's (wrapped) `create` sends it
  instead, so every call is a traced run. The reply's tool arguments are validated by the
  pydantic model.
  This replaces `ChatOpenAI.with_structured_output(include_raw=True)`, whose runnable chain
  (callback managers, config merging, the schema rebuilt from pydantic on every request) cost
  ~4.4 ms of Python per call, more than everything else on the evaluation path together.
- `ChatModelCall`: any langchain chat model's `with_structured_output(include_raw=True)`,
  for the question generator (a handful of calls per interview) and for the scripted fake
  chat models of the unit tests.
The request uses tool calling with a named `tool_choice` (see `STRUCTURED_OUTPUT_METHOD` in
`nodes.judges.llm.client` for why), exactly as `with_structured_output(method=
"function_calling")` sends it, so servers see the same requests as before.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from langchain_core.exceptions import ModelRefusalError
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from openai import AsyncOpenAI
from pydantic import BaseModel, ValidationError

from nodes.judges.details import ScoreDistribution
from nodes.judges.llm.logprobs import TOP_LOGPROBS, weigh_score
from nodes.judges.llm.retry import describe
from nodes.judges.llm.transport import ChatCompletions

T = TypeVar("T", bound=BaseModel)

#: langchain message type -> OpenAI chat role.
_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


@dataclass(frozen=True)
class Attempt(Generic[T]):
    """The outcome of one request that got a reply: the result, or why it is unusable."""

    parsed: T | None
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    error: str | None = None
    retryable: bool = True
    """For a failed attempt: whether another attempt may succeed (not after a refusal)."""
    distribution: ScoreDistribution | None = None
    """With logprobs requested: the probability-weighted score, or why there is none."""


class StructuredCall(Protocol[T]):
    """Sends a prompt once and reads the structured reply (exceptions = no usable reply)."""

    async def __call__(self, messages: Sequence[BaseMessage]) -> Attempt[T]:
        """One attempt."""
        ...


def openai_messages(messages: Sequence[BaseMessage]) -> list[Any]:
    """Our langchain messages as OpenAI chat messages (the prompts are plain text)."""
    return [{"role": _ROLES.get(m.type, m.type), "content": m.content} for m in messages]


def _wrapped(client: AsyncOpenAI) -> bool:
    """Whether `chat.completions.create` was replaced on this client.

    LangSmith's `wrap_openai` (or a test's spy) replaces it: every request must go through it.
    """
    return "create" in vars(client.chat.completions)


class ToolCall(Generic[T]):
    """A structured-output request to an OpenAI-compatible server, built once per schema.

    The body is complete when it is sent: the template, serialised once, and the messages.
    `chat.completions.create` would walk it against the SDK's TypedDict definitions on every
    call (`async_maybe_transform`: ~4 ms of Python for a body it leaves unchanged) and build
    pydantic models of the reply (`construct_type`, ~0.7 ms) that we only read three fields
    of; the SDK's `post` would still rebuild and re-encode the request (~0.6 ms). So the
    bytes go to `ChatCompletions.post`. When `create` has been wrapped (LANGSMITH_TRACING=
    true: `wrap_openai` traces `create` calls), the call goes through `create` so every
    judge call stays a LangSmith run; so it does for a client that authenticates per request
    (not with a plain API key), which only the SDK knows how to sign.
    """

    def __init__(
        self,
        client: AsyncOpenAI,
        model: str,
        schema: type[T],
        temperature: float = 0,
        tool: dict[str, Any] | None = None,
        logprobs: bool = False,
        completions: ChatCompletions | None = None,
    ) -> None:
        """Build the tool schema and the request template for `schema` (reused as is).

        `tool` passes a schema already built for another juror of the same judge.
        `logprobs` asks for token logprobs and weighs the reply's overall `score` by them
        (`nodes.judges.llm.logprobs`; JUDGE_SCORE_WEIGHTING=logprobs).
        `completions` is the client's endpoint, shared by every call to that server (its
        owner closes it); by default one of this call's own (`self.completions.aclose()`).
        """
        self.schema = schema
        self.tool: dict[str, Any] = tool if tool is not None else convert_to_openai_tool(schema)
        self.tool_name: str = self.tool["function"]["name"]
        self.template: dict[str, Any] = {
            "model": model,
            "temperature": temperature,
            "tools": [self.tool],
            "tool_choice": {"type": "function", "function": {"name": self.tool_name}},
            "parallel_tool_calls": False,
            "stream": False,
        }
        if logprobs:
            self.template.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        self.logprobs = logprobs
        #: The serialised template without its closing brace: the messages complete it.
        self.head = json.dumps(self.template, ensure_ascii=False)[:-1].encode() + b', "messages": '
        self.completions = completions if completions is not None else ChatCompletions(client)
        self.through_create = _wrapped(client) or not ChatCompletions.supports(client)
        self._create = client.chat.completions.create

    async def __call__(self, messages: Sequence[BaseMessage]) -> Attempt[T]:
        """Send the prompt; validate the tool call's arguments with the schema."""
        prompt = openai_messages(messages)
        if self.through_create:
            return self.read(await self._create(**self.template, messages=prompt))
        body = self.head + json.dumps(prompt, ensure_ascii=False).encode() + b"}"
        return self.read(await self.completions.post(body))

    def read(self, response: object) -> Attempt[T]:
        """The attempt a chat-completion reply stands for (every malformation is retryable).

        `response` is the reply's body (the lean path: bytes, whatever its content type), or
        the SDK's `ChatCompletion` (through `create`).
        """
        data = _as_json(response)
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        tokens = (
            _count(usage.get("prompt_tokens")),
            _count(usage.get("completion_tokens")),
            _count(usage.get("total_tokens")),
        )
        choices = data.get("choices")
        if not choices or not isinstance(choices, list):
            error = data.get("error")  # some gateways answer errors with a 200
            problem = f"error body: {str(error)[:300]}" if error else "no choices in the reply"
            return Attempt(None, *tokens, error=f"invalid structured output: {problem}")
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
        if not isinstance(message, dict):
            return Attempt(None, *tokens, error="invalid structured output: no message")
        if message.get("refusal"):
            # At temperature 0 the same prompt is refused again: retrying only burns tokens.
            return Attempt(
                None, *tokens, error=f"the model refused: {message['refusal']}", retryable=False
            )
        functions = [
            c["function"]
            for c in message.get("tool_calls") or ()
            if isinstance(c, dict) and isinstance(c.get("function"), dict)
        ]
        function = next((f for f in functions if f.get("name") == self.tool_name), None)
        if function is None:
            return Attempt(
                None, *tokens, error=f"invalid structured output: no {self.tool_name} tool call"
            )
        try:
            arguments = json.loads(function.get("arguments") or "", strict=False)
            parsed = self.schema.model_validate(arguments)
        except (ValueError, TypeError, ValidationError) as exc:  # JSONDecodeError: ValueError
            return Attempt(None, *tokens, error=f"invalid structured output: {describe(exc)}")
        score = getattr(parsed, "score", None)
        if not self.logprobs or not isinstance(score, int | float):
            return Attempt(parsed, *tokens)
        distribution = weigh_score(choices[0].get("logprobs"), score)
        return Attempt(parsed, *tokens, distribution=distribution)


def _as_json(response: object) -> dict[str, Any]:
    """The reply as a JSON object ({} when it is none: read as "no choices")."""
    if isinstance(response, BaseModel):  # the SDK's ChatCompletion, through `create`
        response = response.model_dump()
    elif isinstance(response, str | bytes):  # the body as sent
        try:
            response = json.loads(response, strict=False)
        except ValueError:
            return {}
    return response if isinstance(response, dict) else {}


def _count(value: object) -> int:
    """A token count from the usage block (0 when absent or not a number)."""
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


class ChatModelCall(Generic[T]):
    """A structured-output request through a langchain chat model (runnable built once)."""

    def __init__(self, chat_model: BaseChatModel, schema: type[T], method: str | None) -> None:
        """`chat_model.with_structured_output(schema, include_raw=True[, method=method])`."""
        self.schema = schema
        options: dict[str, Any] = {"include_raw": True}
        if method is not None:
            options["method"] = method
        self._runnable = chat_model.with_structured_output(schema, **options)

    async def __call__(self, messages: Sequence[BaseMessage]) -> Attempt[T]:
        """Invoke the runnable; unpack `{raw, parsed, parsing_error}`."""
        return self.read(await self._runnable.ainvoke(list(messages)))

    def read(self, result: object) -> Attempt[T]:
        """The attempt an `include_raw=True` result stands for."""
        if isinstance(result, self.schema):
            return Attempt(result)
        if not isinstance(result, dict):
            return Attempt(
                None, error=f"unexpected structured-output result {type(result).__name__}"
            )
        raw = result.get("raw")
        metadata = raw.usage_metadata if isinstance(raw, AIMessage) else None
        tokens = (
            (
                int(metadata.get("input_tokens", 0)),
                int(metadata.get("output_tokens", 0)),
                int(metadata.get("total_tokens", 0)),
            )
            if metadata
            else (0, 0, 0)
        )
        parsing_error = result.get("parsing_error")
        parsed = result.get("parsed")
        if isinstance(parsing_error, ModelRefusalError):
            return Attempt(
                None,
                *tokens,
                error=f"the model refused: {describe(parsing_error)}",
                retryable=False,
            )
        if parsing_error is not None:
            return Attempt(
                None, *tokens, error=f"invalid structured output: {describe(parsing_error)}"
            )
        if parsed is None:
            return Attempt(
                None,
                *tokens,
                error="invalid structured output: the model returned no parsable result",
            )
        try:
            return Attempt(self.schema.model_validate(parsed), *tokens)
        except ValidationError as exc:
            return Attempt(None, *tokens, error=f"invalid structured output: {describe(exc)}")
