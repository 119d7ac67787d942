"""The judge's lean transport speaks for the SDK client: its headers, its URL, its exceptions.

`ChatCompletions` bypasses the SDK's request building, so what the SDK did for free is
checked here against the local OpenAI-compatible stub: the same exceptions for a failed
status (the retry policy and the limiter depend on their types and headers), a connection
failure as `APIConnectionError`, and the client's identity headers on every request.
"""

from __future__ import annotations

import json

import openai
import pytest
from openai import AsyncOpenAI

from nodes.judges.llm import structured
from nodes.judges.llm.judge import TurnJudgement
from nodes.judges.llm.transport import ChatCompletions
from tests.support.openai_stub import OpenAIStub

BODY = json.dumps({"model": "stub", "messages": [{"role": "user", "content": "hello"}]}).encode()


def client_of(base_url: str, **options: object) -> AsyncOpenAI:
    return AsyncOpenAI(api_key="sk-test", base_url=base_url, max_retries=0, **options)  # type: ignore[arg-type]


async def test_a_reply_is_the_body_as_sent(stub: OpenAIStub) -> None:
    completions = ChatCompletions(client_of(stub.base_url))
    try:
        reply = json.loads(await completions.post(BODY))
    finally:
        await completions.aclose()
    assert reply["choices"][0]["message"]["role"] == "assistant"
    assert stub.calls == 1 and stub.api_keys == ["sk-test"]
    assert stub.requests[0]["messages"] == [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    ("kind", "error"),
    [("429", openai.RateLimitError), ("500", openai.InternalServerError)],
)
async def test_a_failed_status_is_the_sdks_exception(
    stub: OpenAIStub, kind: str, error: type[openai.APIStatusError]
) -> None:
    stub.retry_after_s = 0.4
    stub.add_fault(kind, times=1)  # type: ignore[arg-type]
    completions = ChatCompletions(client_of(stub.base_url))
    try:
        with pytest.raises(error) as raised:
            await completions.post(BODY)
    finally:
        await completions.aclose()
    assert raised.value.status_code == int(kind)
    assert str(raised.value).startswith(f"Error code: {kind}")
    if kind == "429":  # what the limiter and the backoff read
        assert raised.value.response.headers["retry-after"] == "0.4"


async def test_no_server_is_a_connection_error() -> None:
    completions = ChatCompletions(client_of("http://127.0.0.1:9/v1"))
    try:
        with pytest.raises(openai.APIConnectionError):
            await completions.post(BODY)
    finally:
        await completions.aclose()


def test_the_clients_identity_goes_with_every_request() -> None:
    completions = ChatCompletions(
        client_of(
            "http://llm.internal:8000/v1",
            organization="org-1",
            project="proj-1",
            default_headers={"X-Gateway": "tj"},
            default_query={"api-version": "2024-10-21"},
        )
    )
    assert completions.url == "http://llm.internal:8000/v1/chat/completions"
    assert completions.headers["Authorization"] == "Bearer sk-test"
    assert completions.headers["OpenAI-Organization"] == "org-1"
    assert completions.headers["OpenAI-Project"] == "proj-1"
    assert completions.headers["X-Gateway"] == "tj"
    assert completions.query == {"api-version": "2024-10-21"}
    plain = ChatCompletions(client_of("http://llm.internal:8000/v1"))
    assert "OpenAI-Organization" not in plain.headers  # the SDK's "omit", not a header


class _SignedPerRequest(AsyncOpenAI):
    """A client with no bearer key of its own (as with workload identity): the SDK signs."""

    @property
    def auth_headers(self) -> dict[str, str]:
        return {}


def test_a_client_signing_per_request_goes_through_the_sdk() -> None:
    signed = _SignedPerRequest(api_key="unused", base_url="http://127.0.0.1:9/v1")
    assert not ChatCompletions.supports(signed)
    assert structured.ToolCall(signed, "m", TurnJudgement).through_create
    plain = client_of("http://127.0.0.1:9/v1")
    assert not structured.ToolCall(plain, "m", TurnJudgement).through_create


def test_the_environments_proxy_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "llm.internal")
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert ChatCompletions(client_of("https://api.example.com/v1")).proxy == (
        "http://proxy.corp:3128"
    )
    assert ChatCompletions(client_of("https://llm.internal/v1")).proxy is None
