"""Local OpenAI-compatible chat-completions server for offline tests and benchmarks.

The stub lets tests exercise the *real* ``langchain_openai.ChatOpenAI`` client,
including ``with_structured_output(PydanticModel)``, without network access.
It is a small Starlette app served by uvicorn in a background thread on
``127.0.0.1`` with an ephemeral port.

Supported request shapes on ``POST /v1/chat/completions``:

* ``response_format={"type": "json_schema", ...}`` (langchain's ``json_schema``
  method): the synthesised object is returned as the message ``content``.
* ``tools`` + ``tool_choice`` (langchain's ``function_calling`` method): a
  single ``tool_calls`` entry with the function name and JSON ``arguments``.
* ``response_format={"type": "json_object"}`` (``json_mode``): a JSON object
  as ``content`` (``{}`` unless a responder supplies one; no schema is sent).
* plain chat: a short text ``content``.
* ``logprobs=True`` (non-streamed tool calls): ``choices[0].logprobs.content`` covers the
  tool-call argument text token by token, as vLLM / llama.cpp return it, with known
  alternatives at the top-level ``score`` value (``score_alternatives``);
  ``logprobs_mode`` switches to digit-by-digit numbers or to no logprobs for tool calls
  (what api.openai.com does).
* ``stream=True`` for all of the above (Server-Sent Events, with a final usage
  chunk when ``stream_options.include_usage`` is set), because LangGraph's
  ``messages`` stream mode makes chat models stream.

Example:
    >>> with OpenAIStub(latency_s=0.05) as stub:  # doctest: +SKIP
    ...     llm = ChatOpenAI(model="stub", base_url=stub.base_url, api_key="test")
    ...     result = llm.with_structured_output(Verdict).invoke("grade this")
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import math
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = [
    "DEFAULT_SCORE_ALTERNATIVES",
    "FaultKind",
    "LogprobsMode",
    "OpenAIStub",
    "deterministic_score",
    "synthesize_from_schema",
]

FaultKind = Literal[
    "500", "429", "timeout", "malformed", "no_choices", "empty_tool_call", "error_body"
]

_FAULT_KINDS: frozenset[str] = frozenset(
    {"500", "429", "timeout", "malformed", "no_choices", "empty_tool_call", "error_body"}
)
_MALFORMED_JSON = '{"score": "high"'
# Tool-call arguments that are valid JSON but violate the schema: langchain files
# unparsable arguments under ``invalid_tool_calls`` and its ``first_tool_only``
# parser then silently returns ``None``, so truncated JSON would not surface an error.
_MALFORMED_TOOL_ARGS = '{"score": "high"}'
_MAX_DEPTH = 8
#: ``tokens``: one token per number (the score one token); ``digits``: one token per digit
#: (tokenizers that split numbers); ``none``: no logprobs for tool calls (api.openai.com).
LogprobsMode = Literal["tokens", "digits", "none"]
_TOKENS = re.compile(r"\d+|[A-Za-z_]+|\s+|[^\dA-Za-z_\s]")
_DIGIT_TOKENS = re.compile(r"\d|[A-Za-z_]+|\s+|[^\dA-Za-z_\s]")
_SCORE_MARK = "<<stub-score>>"
#: The probability left over by ``score_alternatives`` goes to this non-numeric token.
_OTHER_TOKEN = "N"
_SLEEP_STEP_S = 0.05


# --------------------------------------------------------------------------- #
# Deterministic JSON-schema synthesis
# --------------------------------------------------------------------------- #
def _hash_int(*parts: str) -> int:
    """Return a stable non-negative integer derived from ``parts``.

    Args:
        *parts: Strings to hash (joined with newlines).

    Returns:
        The first 8 bytes of the SHA-256 digest as an unsigned integer.
    """
    digest = hashlib.sha256("\n".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def deterministic_score(
    text: str, path: str = "score", minimum: int = 0, maximum: int = 100
) -> int:
    """Compute the integer score the stub synthesises for a ``score`` field.

    Args:
        text: Text of the last user message in the request.
        path: Dotted path of the field inside the result object, e.g. ``"score"``
            or ``"criteria.0.score"``.
        minimum: Inclusive lower bound.
        maximum: Inclusive upper bound.

    Returns:
        An integer in ``[minimum, maximum]`` that is reproducible for the same
        ``text``/``path`` and varies with the text.
    """
    if maximum < minimum:
        return minimum
    return minimum + _hash_int(path, text) % (maximum - minimum + 1)


def _resolve_ref(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    """Resolve a local JSON pointer such as ``#/$defs/Item`` against ``root``.

    Args:
        ref: The ``$ref`` value.
        root: The root schema document.

    Returns:
        The referenced sub-schema, or ``{}`` when it cannot be resolved.
    """
    if not ref.startswith("#"):
        return {}
    node: Any = root
    for raw in ref.lstrip("#").split("/"):
        if not raw:
            continue
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return {}
    return node if isinstance(node, dict) else {}


def _bounds(schema: dict[str, Any], integer: bool) -> tuple[float | None, float | None]:
    """Return the inclusive (lo, hi) bounds of a numeric schema.

    Args:
        schema: A numeric JSON schema.
        integer: Whether the value must be an integer.

    Returns:
        Tuple of lower and upper bounds; ``None`` where unbounded.
    """
    lo: float | None = schema.get("minimum")
    hi: float | None = schema.get("maximum")
    step = 1 if integer else 1e-6
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(ex_lo, bool):  # draft-4 style boolean flags
        lo = lo + step if ex_lo and lo is not None else lo
    elif isinstance(ex_lo, int | float):
        lo = ex_lo + step if lo is None else max(lo, ex_lo + step)
    if isinstance(ex_hi, bool):
        hi = hi - step if ex_hi and hi is not None else hi
    elif isinstance(ex_hi, int | float):
        hi = ex_hi - step if hi is None else min(hi, ex_hi - step)
    return lo, hi


class _Synth:
    """Stateful helper that walks a JSON schema and builds a valid instance."""

    def __init__(self, root: dict[str, Any], seed_text: str) -> None:
        self.root = root
        self.seed_text = seed_text

    def value(self, schema: Any, path: str, name: str, depth: int) -> Any:
        """Synthesise a value for ``schema``.

        Args:
            schema: The (sub-)schema.
            path: Dotted path of the value inside the result.
            name: Name of the enclosing property (``""`` at the root).
            depth: Recursion depth, used to stop on recursive schemas.

        Returns:
            A JSON-compatible value valid for ``schema`` (best effort).
        """
        if schema is True or not isinstance(schema, dict):
            return f"stub {name}".strip() if name else "stub"
        if "$ref" in schema:
            target = _resolve_ref(schema["$ref"], self.root)
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            return self.value(merged, path, name, depth + 1)
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if schema.get("enum"):
            return copy.deepcopy(schema["enum"][0])
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = _resolve_ref(part["$ref"], self.root) if "$ref" in part else part
                for key, val in part.items():
                    if key == "properties":
                        merged["properties"] = {**merged.get("properties", {}), **val}
                    elif key == "required":
                        merged["required"] = [*merged.get("required", []), *val]
                    else:
                        merged.setdefault(key, val)
            return self.value(merged, path, name, depth + 1)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = list(schema[key])
                non_null = [
                    o for o in options if not (isinstance(o, dict) and o.get("type") == "null")
                ]
                if depth >= _MAX_DEPTH and len(non_null) < len(options):
                    return None
                chosen = non_null[0] if non_null else options[0]
                return self.value(chosen, path, name, depth + 1)

        typ = schema.get("type")
        if isinstance(typ, list):
            non_null_types = [t for t in typ if t != "null"]
            if not non_null_types or (depth >= _MAX_DEPTH and "null" in typ):
                return None
            typ = non_null_types[0]
        if typ is None:
            if "properties" in schema:
                typ = "object"
            elif "items" in schema:
                typ = "array"
            else:
                typ = "string"

        if typ == "object":
            return self._object(schema, path, depth)
        if typ == "array":
            return self._array(schema, path, name, depth)
        if typ in ("integer", "number"):
            return self._number(schema, name, path, integer=typ == "integer")
        if typ == "boolean":
            return False
        if typ == "null":
            return None
        return self._string(schema, name, path)

    def _object(self, schema: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        """Build an object with every declared property (required ones first)."""
        props: dict[str, Any] = schema.get("properties") or {}
        required: list[str] = list(schema.get("required") or [])
        out: dict[str, Any] = {}
        for key in [*required, *[p for p in props if p not in required]]:
            if key in out:
                continue
            if key not in props and key in required:
                out[key] = f"stub {key}"
                continue
            if depth >= _MAX_DEPTH and key not in required:
                continue
            child_path = f"{path}.{key}" if path else key
            out[key] = self.value(props[key], child_path, key, depth + 1)
        return out

    def _array(self, schema: dict[str, Any], path: str, name: str, depth: int) -> list[Any]:
        """Build a list with 1-2 items (within ``minItems``/``maxItems``)."""
        min_items = int(schema.get("minItems", 0))
        max_items = int(schema.get("maxItems", 2 if min_items <= 2 else min_items))
        if depth >= _MAX_DEPTH:
            count = min_items
        else:
            count = 1 + _hash_int("len", path, self.seed_text) % 2
            count = max(min_items, min(count, max_items))
        items = schema.get("items", {})
        if isinstance(items, list):  # draft-4 tuple form / prefixItems-like
            return [self.value(s, f"{path}.{i}", name, depth + 1) for i, s in enumerate(items)]
        return [self.value(items, f"{path}.{i}", name, depth + 1) for i in range(count)]

    def _number(self, schema: dict[str, Any], name: str, path: str, integer: bool) -> int | float:
        """Pick a number within the schema bounds (hash-derived for ``score``)."""
        lo, hi = _bounds(schema, integer)
        if name.lower() == "score":
            s_lo = 0 if lo is None else lo
            s_hi = 100 if hi is None else hi
            if integer or s_hi - s_lo >= 10:
                i_lo, i_hi = math.ceil(s_lo), math.floor(s_hi)
                if i_lo <= i_hi:
                    return deterministic_score(self.seed_text, path, int(i_lo), int(i_hi))
            frac = (_hash_int(path, self.seed_text) % 1001) / 1000
            return round(s_lo + frac * (s_hi - s_lo), 6)
        if lo is not None and hi is not None:
            val: float = (lo + hi) / 2
        elif lo is not None:
            val = lo
        elif hi is not None:
            val = min(1, hi)
        else:
            val = 1
        if integer:
            ival = math.ceil(val) if lo is not None else math.floor(val)
            if hi is not None and ival > hi:
                ival = math.floor(hi)
            return int(ival)
        return val

    @staticmethod
    def _string(schema: dict[str, Any], name: str, path: str) -> str:
        """Build a string honouring ``format`` and length constraints."""
        fmt = schema.get("format")
        formats = {
            "date-time": "2024-01-01T00:00:00Z",
            "date": "2024-01-01",
            "time": "00:00:00",
            "email": "stub@example.com",
            "uri": "https://example.com/stub",
            "url": "https://example.com/stub",
            "uuid": str(uuid.UUID(int=_hash_int(path) % (1 << 128))),
            "ipv4": "127.0.0.1",
        }
        if fmt in formats:
            return formats[fmt]
        suffix = path.rsplit(".", 1)[-1] if path else ""
        text = f"stub {name}".strip() if name else "stub"
        if suffix.isdigit():
            text = f"{text} {suffix}"
        min_len = int(schema.get("minLength", 0))
        max_len = schema.get("maxLength")
        if len(text) < min_len:
            text = text + "x" * (min_len - len(text))
        if max_len is not None:
            text = text[: int(max_len)]
        return text


def synthesize_from_schema(schema: dict[str, Any], seed_text: str = "") -> Any:
    """Deterministically build an instance that validates against ``schema``.

    Handles ``$ref``/``$defs``, ``allOf``/``anyOf``/``oneOf``, ``const``,
    ``enum`` (first value), objects (all properties), arrays (1-2 items),
    strings (``format``/length aware), numbers within ``minimum``/``maximum``
    and booleans (``False``). A numeric field named ``score`` gets a value
    derived from ``seed_text`` (see :func:`deterministic_score`).

    Args:
        schema: A JSON schema (root document; local ``$ref`` are resolved in it).
        seed_text: Text that seeds hash-derived values (the last user message).

    Returns:
        A JSON-compatible Python object.
    """
    return _Synth(schema, seed_text).value(schema, "", "", 0)


# --------------------------------------------------------------------------- #
# Request helpers
# --------------------------------------------------------------------------- #
def _content_text(content: Any) -> str:
    """Flatten an OpenAI message ``content`` (string or parts) into text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict):
                texts.append(str(part.get("text", "")))
            else:
                texts.append(str(part))
        return "".join(texts)
    return str(content)


def _message_text(message: dict[str, Any]) -> str:
    """Return the text of a chat message including any tool-call arguments."""
    text = _content_text(message.get("content"))
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        text += str(fn.get("name", "")) + str(fn.get("arguments", ""))
    return text


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    """Return the text of the last ``user`` message (or of the last message)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return _content_text(message.get("content"))
    return _content_text(messages[-1].get("content")) if messages else ""


def _estimate_tokens(text: str) -> int:
    """Rough token estimate: ``len(text) // 4`` (at least 1 for non-empty text)."""
    return max(1, len(text) // 4) if text else 0


@dataclass
class _Fault:
    """A pending fault injection rule."""

    kind: str
    remaining: int | None
    match: str | None


@dataclass
class _Plan:
    """What the handler decided to return for one request."""

    mode: Literal["text", "json", "tool"]
    payload: str
    tool_name: str | None = None


# --------------------------------------------------------------------------- #
# The stub server
# --------------------------------------------------------------------------- #
class OpenAIStub:
    """OpenAI-compatible ``/v1/chat/completions`` server running in a thread.

    Attributes:
        latency_s: Seconds each request waits (``asyncio.sleep``, non-blocking)
            before answering; may be changed while running.
        timeout_sleep_s: Seconds a ``"timeout"`` fault waits before answering
            (the wait ends early if the client disconnects or the stub stops).
        keep_alive: If ``False`` (default) every response carries
            ``Connection: close``. ``langchain_openai`` caches one async httpx
            client per ``(base_url, timeout)`` process-wide; pooled keep-alive
            connections from a closed event loop (e.g. a previous
            pytest-asyncio test) would otherwise fail with "Event loop is
            closed". Set ``True`` to measure connection-reuse performance.
        retry_after_s: If set, ``429`` faults carry ``retry-after`` /
            ``retry-after-ms`` headers with this value (honoured by the
            ``openai`` client when it retries).
        responder: Optional callable ``responder(request_json) -> object`` whose
            return value replaces the synthesised result (for plain chat a
            ``str`` is used verbatim as the content).
        calls: Total requests received since start / last :meth:`reset_stats`.
        max_concurrency: Maximum number of requests observed in flight at once.
        requests: Parsed JSON bodies of the requests received.
        api_keys: The bearer token of each request received (same order as
            ``requests``), to check which key reached which server.
        logprobs_mode: How a request with ``logprobs: true`` is answered (see
            ``LogprobsMode``); requests without it always get ``"logprobs": null``.
        score_alternatives: Offset from the sampled top-level ``score`` -> probability
            of that score's token (``{0: 0.6, -10: 0.25, 10: 0.1}``: the sampled score
            0.6, ten less 0.25, ten more 0.1, and the remaining 0.05 on a non-numeric
            token); alternatives outside 0-100 are left out.
    """

    def __init__(
        self, latency_s: float = 0.0, responder: Callable[[dict[str, Any]], Any] | None = None
    ) -> None:
        """Create a stopped stub.

        Args:
            latency_s: Per-request artificial latency in seconds.
            responder: Optional override producing the structured result from
                the request JSON.
        """
        self.latency_s: float = latency_s
        self.responder: Callable[[dict[str, Any]], Any] | None = responder
        self.timeout_sleep_s: float = 30.0
        self.retry_after_s: float | None = None
        self.keep_alive: bool = False
        self.calls: int = 0
        self.max_concurrency: int = 0
        self.requests: list[dict[str, Any]] = []
        self.api_keys: list[str] = []
        self.logprobs_mode: LogprobsMode = "tokens"
        self.score_alternatives: dict[int, float] = dict(DEFAULT_SCORE_ALTERNATIVES)
        self._in_flight = 0
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._sock: socket.socket | None = None
        self._app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/stats", self._stats, methods=["GET"]),
                Route("/stats/reset", self._reset, methods=["POST"]),
            ]
        )

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        """Base URL to pass as ``base_url`` to OpenAI clients (ends in ``/v1``).

        Raises:
            RuntimeError: If the stub has not been started.
        """
        if self._port is None:
            raise RuntimeError("OpenAIStub is not running; call start() first")
        return f"http://127.0.0.1:{self._port}/v1"

    def start(self) -> OpenAIStub:
        """Start uvicorn in a daemon thread and wait until it accepts connections.

        Returns:
            The stub itself (for chaining).

        Raises:
            RuntimeError: If already running or the server fails to start in 10 s.
        """
        if self._thread is not None:
            raise RuntimeError("OpenAIStub already started")
        self._stopping.clear()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            limit_concurrency=None,
            backlog=4096,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"openai-stub-{port}", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                self._server = self._thread = None
                sock.close()
                raise RuntimeError("OpenAIStub failed to start")
            time.sleep(0.01)
        self._sock = sock
        self._port = port
        return self

    def stop(self) -> None:
        """Stop the server and join its thread (idempotent)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._server = self._thread = None
        self._port = None

    def __enter__(self) -> OpenAIStub:
        """Start the stub on entering a ``with`` block."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the stub on leaving a ``with`` block."""
        self.stop()

    # ------------------------------------------------------------------ faults / stats
    def add_fault(self, kind: FaultKind, times: int | None = 1, match: str | None = None) -> None:
        """Inject a fault into upcoming requests.

        Faults are checked in the order they were added; the first one that
        applies to a request is consumed.

        Args:
            kind: ``"500"`` / ``"429"`` (HTTP error with an OpenAI-style error
                body), ``"timeout"`` (sleep ``timeout_sleep_s`` before
                answering), or ``"malformed"`` (HTTP 200 whose ``content`` is
                the truncated JSON ``{"score": "high"`` or, for tool calls, whose
                ``arguments`` are ``{"score": "high"}``: valid JSON that misses
                required fields and has a wrongly typed ``score``), ``"no_choices"``
                (HTTP 200 without ``choices``), ``"empty_tool_call"`` (HTTP 200 whose
                message has no tool call and empty content) or ``"error_body"`` (HTTP
                200 whose body is an OpenAI-style ``{"error": ...}``).
            times: How many matching requests get the fault; ``None`` = forever.
            match: Only requests whose raw body text contains this substring
                are affected; ``None`` = any request.

        Raises:
            ValueError: If ``kind`` is unknown or ``times`` is not positive.
        """
        if kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(_FAULT_KINDS)}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        with self._lock:
            self._faults.append(_Fault(kind=kind, remaining=times, match=match))

    def clear_faults(self) -> None:
        """Remove all pending faults."""
        with self._lock:
            self._faults.clear()

    def reset_stats(self) -> None:
        """Reset ``calls``, ``max_concurrency``, ``requests`` and ``api_keys``.

        ``max_concurrency`` restarts from the number of requests currently in
        flight; ``requests`` is cleared in place.
        """
        with self._lock:
            self.calls = 0
            self.max_concurrency = self._in_flight
            self.requests.clear()
            self.api_keys.clear()

    def _take_fault(self, body_text: str, body: dict[str, Any]) -> str | None:
        """Consume and return the kind of the first fault matching the request."""
        with self._lock:
            for fault in self._faults:
                if fault.match is not None and fault.match not in body_text:
                    alt = json.dumps(body, ensure_ascii=False)
                    if fault.match not in alt:
                        continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault.kind
        return None

    def _enter(self, body: dict[str, Any], authorization: str) -> None:
        """Record a new in-flight request."""
        with self._lock:
            self.calls += 1
            self.requests.append(body)
            self.api_keys.append(authorization.removeprefix("Bearer "))
            self._in_flight += 1
            self.max_concurrency = max(self.max_concurrency, self._in_flight)

    def _leave(self) -> None:
        """Record the end of an in-flight request."""
        with self._lock:
            self._in_flight -= 1

    def _conn_headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Return response headers, adding ``Connection: close`` unless ``keep_alive``."""
        headers = dict(extra or {})
        if not self.keep_alive:
            headers["connection"] = "close"
        return headers

    async def _sleep(self, seconds: float, request: Request | None = None) -> None:
        """Sleep without blocking the loop; end early on stop or client disconnect."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(_SLEEP_STEP_S, remaining))
            if request is not None and await request.is_disconnected():
                return

    # ------------------------------------------------------------------ handlers
    async def _models(self, request: Request) -> Response:
        """``GET /v1/models``: list a single ``stub`` model."""
        return JSONResponse(
            {"object": "list", "data": [{"id": "stub", "object": "model", "owned_by": "stub"}]}
        )

    async def _stats(self, request: Request) -> Response:
        """``GET /stats``: counters, for a stub running in another process (benchmarks)."""
        with self._lock:
            return JSONResponse({"calls": self.calls, "max_concurrency": self.max_concurrency})

    async def _reset(self, request: Request) -> Response:
        """``POST /stats/reset``: :meth:`reset_stats` over HTTP."""
        self.reset_stats()
        return JSONResponse({"ok": True})

    async def _chat_completions(self, request: Request) -> Response:
        """``POST /v1/chat/completions`` handler."""
        raw = await request.body()
        body_text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(body_text)
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as exc:
            return _error_response(400, f"invalid JSON body: {exc}", "invalid_request_error", None)

        self._enter(body, request.headers.get("authorization", ""))
        streaming_started = False
        try:
            fault = self._take_fault(body_text, body)
            if self.latency_s > 0:
                await self._sleep(self.latency_s)
            if fault == "500":
                return _error_response(
                    500,
                    "The server had an error (stub fault).",
                    "server_error",
                    None,
                    self._conn_headers(),
                )
            if fault == "429":
                headers: dict[str, str] = {}
                if self.retry_after_s is not None:
                    headers = {
                        "retry-after": str(self.retry_after_s),
                        "retry-after-ms": str(int(self.retry_after_s * 1000)),
                    }
                return _error_response(
                    429,
                    "Rate limit reached (stub fault).",
                    "requests",
                    "rate_limit_exceeded",
                    self._conn_headers(headers),
                )
            if fault == "timeout":
                await self._sleep(self.timeout_sleep_s, request)
            if fault == "error_body":  # some gateways report errors with HTTP 200
                return JSONResponse(
                    {
                        "error": {
                            "message": "upstream overloaded (stub fault)",
                            "type": "server_error",
                            "param": None,
                            "code": None,
                        }
                    },
                    headers=self._conn_headers(),
                )

            plan = self._plan(body, malformed=fault == "malformed")
            messages = body.get("messages") or []
            prompt_tokens = _estimate_tokens(
                "".join(_message_text(m) for m in messages if isinstance(m, dict))
            )
            completion_tokens = _estimate_tokens(plan.payload)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            }
            model = str(body.get("model") or "stub")
            completion_id = f"chatcmpl-stub-{uuid.uuid4().hex[:24]}"
            created = int(time.time())
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                streaming_started = True
                return StreamingResponse(
                    self._stream(plan, usage, model, completion_id, created, include_usage),
                    media_type="text/event-stream",
                    headers=self._conn_headers(),
                )
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "annotations": [],
            }
            if fault == "empty_tool_call":
                message["content"] = ""  # neither a tool call nor any text
            elif plan.mode == "tool":
                message["tool_calls"] = [
                    {
                        "id": f"call_{uuid.uuid4().hex[:24]}",
                        "type": "function",
                        "function": {"name": plan.tool_name, "arguments": plan.payload},
                    }
                ]
            else:
                message["content"] = plan.payload
            if fault == "no_choices":  # the openai SDK then fails with a bare TypeError
                return JSONResponse(
                    {
                        "id": completion_id,
                        "object": "chat.completion",
                        "created": created,
                        "model": model,
                        "usage": usage,
                    },
                    headers=self._conn_headers(),
                )
            return JSONResponse(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "logprobs": self._logprobs(body, plan, fault),
                            "finish_reason": "tool_calls" if plan.mode == "tool" else "stop",
                        }
                    ],
                    "usage": usage,
                    "system_fingerprint": "fp_stub",
                },
                headers=self._conn_headers(),
            )
        finally:
            if not streaming_started:
                self._leave()

    def _logprobs(
        self, body: dict[str, Any], plan: _Plan, fault: str | None
    ) -> dict[str, Any] | None:
        """``choices[0].logprobs`` of a non-streamed reply (None unless asked for)."""
        if body.get("logprobs") is not True:
            return None
        if plan.mode != "tool" or fault == "empty_tool_call" or self.logprobs_mode == "none":
            return {"content": None, "refusal": None}  # api.openai.com for tool calls
        top = body.get("top_logprobs")
        top = top if isinstance(top, int) and not isinstance(top, bool) and top >= 0 else 0
        pattern = _DIGIT_TOKENS if self.logprobs_mode == "digits" else _TOKENS
        prefix, score, suffix = _around_score(plan.payload)
        content = [_token(t, 0.0, [(t, 0.0)], top) for t in pattern.findall(prefix)]
        if score is not None:
            pieces = pattern.findall(str(score))
            options = _score_options(score, self.score_alternatives)
            chosen = dict(options).get(str(score), math.log(1e-6))
            content.append(_token(pieces[0], chosen, options, top))
            content += [_token(t, 0.0, [(t, 0.0)], top) for t in pieces[1:]]
        content += [_token(t, 0.0, [(t, 0.0)], top) for t in pattern.findall(suffix)]
        return {"content": content, "refusal": None}

    def _plan(self, body: dict[str, Any], malformed: bool) -> _Plan:
        """Decide the response mode and serialised payload for a request."""
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        seed = _last_user_text(messages)
        response_format = body.get("response_format") or {}
        rf_type = response_format.get("type") if isinstance(response_format, dict) else None
        tool = _select_tool(body, messages)

        if tool is not None:
            name = str(tool.get("name", "tool"))
            schema = tool.get("parameters") or {"type": "object", "properties": {}}
            mode: Literal["text", "json", "tool"] = "tool"
        elif rf_type == "json_schema":
            name = None
            schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
            mode = "json"
        elif rf_type == "json_object":
            name, schema, mode = None, None, "json"
        else:
            name, schema, mode = None, None, "text"

        if malformed:
            payload = _MALFORMED_TOOL_ARGS if mode == "tool" else _MALFORMED_JSON
            return _Plan(mode=mode, payload=payload, tool_name=name)
        if self.responder is not None:
            result = self.responder(body)
            if mode == "text" and isinstance(result, str):
                return _Plan(mode=mode, payload=result)
            return _Plan(mode=mode, payload=json.dumps(result), tool_name=name)
        if mode == "text":
            snippet = " ".join(seed.split())[:60]
            return _Plan(
                mode=mode, payload=f"Stub reply to: {snippet}" if snippet else "Stub reply."
            )
        result = synthesize_from_schema(schema, seed) if schema is not None else {}
        return _Plan(mode=mode, payload=json.dumps(result), tool_name=name)

    async def _stream(
        self,
        plan: _Plan,
        usage: dict[str, Any],
        model: str,
        completion_id: str,
        created: int,
        include_usage: bool,
    ) -> AsyncIterator[bytes]:
        """Yield Server-Sent Events for a streamed completion."""
        try:
            base = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
            }

            def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
                return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode()

            pieces = _split(plan.payload)
            if plan.mode == "tool":
                first = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": f"call_{uuid.uuid4().hex[:24]}",
                            "type": "function",
                            "function": {"name": plan.tool_name, "arguments": ""},
                        }
                    ],
                }
                yield event([{"index": 0, "delta": first, "logprobs": None, "finish_reason": None}])
                for piece in pieces:
                    delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                    yield event(
                        [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]
                    )
                finish = "tool_calls"
            else:
                first = {"role": "assistant", "content": "", "refusal": None}
                yield event([{"index": 0, "delta": first, "logprobs": None, "finish_reason": None}])
                for piece in pieces:
                    yield event(
                        [
                            {
                                "index": 0,
                                "delta": {"content": piece},
                                "logprobs": None,
                                "finish_reason": None,
                            }
                        ]
                    )
                finish = "stop"
            yield event([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}])
            if include_usage:
                yield event([], usage=usage)
            yield b"data: [DONE]\n\n"
        finally:
            self._leave()


#: ``OpenAIStub.score_alternatives`` by default.
DEFAULT_SCORE_ALTERNATIVES: dict[int, float] = {0: 0.6, -10: 0.25, 10: 0.1}


def _around_score(payload: str) -> tuple[str, int | None, str]:
    """``payload`` split around its top-level integer ``score`` (``(payload, None, "")``: none)."""
    try:
        result = json.loads(payload)
    except ValueError:
        return payload, None, ""
    score = result.get("score") if isinstance(result, dict) else None
    if not isinstance(score, int) or isinstance(score, bool):
        return payload, None, ""
    marked = json.dumps({**result, "score": _SCORE_MARK})
    prefix, _, suffix = marked.partition(json.dumps(_SCORE_MARK))
    if prefix + str(score) + suffix != payload:  # serialised differently: no known position
        return payload, None, ""
    return prefix, score, suffix


def _score_options(score: int, alternatives: dict[int, float]) -> list[tuple[str, float]]:
    """(token, logprob) of the score token's alternatives, most likely first."""
    options = [
        (str(score + offset), math.log(p))
        for offset, p in alternatives.items()
        if 0 <= score + offset <= 100 and p > 0
    ]
    rest = 1.0 - sum(alternatives.values())
    if rest > 0:
        options.append((_OTHER_TOKEN, math.log(rest)))
    return sorted(options, key=lambda option: -option[1])


def _token(text: str, logprob: float, options: list[tuple[str, float]], top: int) -> dict[str, Any]:
    """One ``logprobs.content`` entry, with its first ``top`` alternatives."""
    return {
        "token": text,
        "logprob": logprob,
        "bytes": list(text.encode("utf-8")),
        "top_logprobs": [
            {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))} for t, lp in options[:top]
        ],
    }


def _split(text: str, parts: int = 3) -> list[str]:
    """Split ``text`` into up to ``parts`` non-empty chunks for streaming."""
    if not text:
        return []
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _select_tool(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Return the ``function`` spec the stub should call, or ``None`` for no call.

    A specific ``tool_choice`` function, ``"required"`` or ``"any"`` always
    produce a call. ``"auto"`` (or no ``tool_choice``) calls the first tool
    unless the last message is a tool result, so agent loops terminate.
    ``"none"`` never calls a tool.
    """
    tools: list[dict[str, Any]] = [
        t["function"]
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    if not tools:
        return None
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        for fn in tools:
            if fn.get("name") == wanted:
                return fn
        return tools[0]
    if choice == "none":
        return None
    if choice in ("required", "any"):
        return tools[0]
    if messages and messages[-1].get("role") == "tool":
        return None
    return tools[0]


def _error_response(
    status: int,
    message: str,
    err_type: str,
    code: str | None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build an OpenAI-style error response."""
    return JSONResponse(
        {"error": {"message": message, "type": err_type, "param": None, "code": code}},
        status_code=status,
        headers=headers,
    )


def main() -> None:
    """Serve a stub in this process until stdin closes (benchmarks run it out of process).

    Prints the base URL on the first line of stdout. Usage:
    ``python -m tests.support.openai_stub --latency 0.3 --keep-alive``.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--keep-alive", action="store_true")
    args = parser.parse_args()
    stub = OpenAIStub(latency_s=args.latency)
    stub.keep_alive = args.keep_alive
    with stub:
        print(stub.base_url, flush=True)
        sys.stdin.read()  # returns when the parent closes our stdin (or exits)


if __name__ == "__main__":
    main()
