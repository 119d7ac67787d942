"""Juries across several OpenAI-compatible endpoints (JUDGE_MODELS `model@url`, JUDGE_API_KEYS).

Two local stub servers stand in for two providers: the judge's own endpoint
(OPENAI_BASE_URL) and a second one a juror sits on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic import SecretStr, ValidationError

from api.settings import Settings
from nodes.judges.llm.client import PLACEHOLDER_API_KEY, make_openai_client
from nodes.judges.llm.judge import LLMJudge
from nodes.judges.llm.jury import Juror
from nodes.judges.settings import JuryModel, parse_jury_model
from tests.support.openai_stub import OpenAIStub
from tests.support.stub_judge import PAYMENT_CASE, stub_judge

CASE = PAYMENT_CASE


@pytest.fixture(scope="module")
def second() -> Iterator[OpenAIStub]:
    """The other provider."""
    with OpenAIStub() as server:
        yield server


def host(server: OpenAIStub) -> str:
    return server.base_url.split("/")[2]


# ---------------------------------------------------------------------------- settings


def test_entries_name_a_model_and_optionally_its_endpoint() -> None:
    assert parse_jury_model("gpt-4o-mini") == JuryModel("gpt-4o-mini")
    assert parse_jury_model(" llama3@http://gpu-box:11434/v1/ ") == JuryModel(
        "llama3", "http://gpu-box:11434/v1"
    )
    # an "@" that does not start a URL belongs to the model name
    assert parse_jury_model("org/model@2024") == JuryModel("org/model@2024")


def test_jury_models_put_the_default_endpoint_first_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://main:8000/v1")
    monkeypatch.setenv(
        "JUDGE_MODELS", "gpt-4o-mini, llama3@http://gpu-box:11434/v1, qwen@http://main:8000/v1/"
    )
    monkeypatch.setenv("JUDGE_API_KEYS", json.dumps({"http://gpu-box:11434/v1/": "sk-gpu"}))
    settings = Settings()
    assert settings.jury_models == [
        JuryModel("gpt-4o-mini"),
        JuryModel("llama3", "http://gpu-box:11434/v1"),
        JuryModel("qwen"),  # on OPENAI_BASE_URL itself: the default endpoint
    ]
    key = settings.endpoint_api_key("http://gpu-box:11434/v1")
    assert isinstance(key, SecretStr) and key.get_secret_value() == "sk-gpu"


@pytest.mark.parametrize(
    ("env", "variable", "message"),
    [
        ({"JUDGE_MODELS": "llama3@http://"}, "JUDGE_MODELS", "is not an http(s) URL"),
        ({"JUDGE_MODELS": "@http://gpu:1/v1"}, "JUDGE_MODELS", "names an endpoint but no model"),
        (
            {"JUDGE_MODELS": "a@http://gpu:1/v1", "JUDGE_API_KEYS": '{"http://gpux:1/v1": "k"}'},
            "JUDGE_API_KEYS",
            "which no JUDGE_MODELS entry uses",
        ),
        ({"JUDGE_API_KEYS": '{"gpu:1": "k"}'}, "JUDGE_API_KEYS", "is not an http(s) URL"),
        ({"JUDGE_API_KEYS": "not json"}, "judge_api_keys", ""),
    ],
)
def test_bad_endpoints_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str, message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises((ValidationError, ValueError)) as raised:
        Settings()
    assert variable in str(raised.value) and message in str(raised.value)


# ---------------------------------------------------------------------------- two servers


async def test_a_jury_across_two_endpoints_asks_each_with_its_own_key(
    stub: OpenAIStub, second: OpenAIStub
) -> None:
    second.reset_stats()
    judge = stub_judge(
        stub,
        openai_api_key=SecretStr("sk-main"),
        judge_models=f"judge-a,judge-b@{second.base_url}",
        judge_api_keys={second.base_url: "sk-second"},
    )
    details = await judge.evaluate_turn(CASE)
    await judge.aclose()
    assert stub.calls == 1 and second.calls == 1
    assert [r["model"] for r in stub.requests] == ["judge-a"]
    assert [r["model"] for r in second.requests] == ["judge-b"]
    assert stub.api_keys == ["sk-main"] and second.api_keys == ["sk-second"]
    assert details.agreement is not None
    seats = [(j.model, j.endpoint) for j in details.agreement.jurors]
    assert seats == [("judge-a", host(stub)), ("judge-b", host(second))]
    assert details.judge.model == "judge-a,judge-b"
    assert details.usage is not None and details.usage.calls == 2
    # aclose closed every endpoint's client, not only the judge's own
    assert all(client.is_closed() for client in judge._endpoints.values())


async def test_an_endpoint_without_a_key_never_receives_openai_api_key(
    stub: OpenAIStub, second: OpenAIStub
) -> None:
    second.reset_stats()
    await stub_judge(
        stub,
        openai_api_key=SecretStr("sk-main"),
        judge_models=f"judge-a,judge-b@{second.base_url}",
        judge_samples=2,
        judge_sample_temperature=0.5,
    ).evaluate_turn(CASE)
    assert second.calls == 2 and set(second.api_keys) == {PLACEHOLDER_API_KEY}
    assert stub.calls == 2 and set(stub.api_keys) == {"sk-main"}


async def test_each_endpoint_has_its_own_concurrency_window(
    stub: OpenAIStub, second: OpenAIStub
) -> None:
    """A 429 from one provider must not halve the window of the other."""
    second.reset_stats()
    second.add_fault("429", times=1)
    judge = stub_judge(
        stub, judge_models=f"judge-a,judge-b@{second.base_url}", llm_max_concurrency=8
    )
    try:
        await judge.evaluate_turn(CASE)
    finally:
        second.clear_faults()
    assert judge.limit.limiter().window == 8  # the default endpoint's: untouched
    (other,) = judge._limits.values()
    assert other.limiter().window < 8  # the rate-limited one's: shrunk


async def test_a_juror_on_an_endpoint_without_a_client_is_refused() -> None:
    """Built by hand (not from settings), a jury must bring a client for every endpoint."""
    client = make_openai_client(
        Settings(openai_base_url="http://127.0.0.1:9/v1", llm_model="m", api_keys=[])
    )
    far = "http://10.0.0.2:8000/v1"
    try:
        with pytest.raises(ValueError, match=f"no client for the juror endpoints {far}"):
            LLMJudge(client, model_name="m", jurors=[Juror("m", 1, 0.0), Juror("n", 1, 0.0, far)])
    finally:
        await client.close()
