"""API_KEYS: `tenant:key` entries, bare keys in tenant `default`, refused values never echoed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from api.settings import Settings
from storage.settings import DEFAULT_TENANT

KEY_1 = "k3y-one-0123456789"
KEY_2 = "k3y-two-abcdefghij"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.delenv("API_KEYS", raising=False)
    monkeypatch.chdir(tmp_path)


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_tenant_key_entries_and_bare_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", f"acme:{KEY_1}, {KEY_2} ,globex.eu : k3y-three-012345")
    keys = make().api_keys
    assert [(k.tenant, k.get_secret_value()) for k in keys] == [
        ("acme", KEY_1),
        (DEFAULT_TENANT, KEY_2),
        ("globex.eu", "k3y-three-012345"),
    ]


def test_secret_str_entries_are_bare_keys() -> None:
    (key,) = make(api_keys=[SecretStr(KEY_1)]).api_keys
    assert (key.tenant, key.get_secret_value()) == (DEFAULT_TENANT, KEY_1)


@pytest.mark.parametrize(
    "value",
    [
        f"bad tenant:{KEY_1}",
        f":{KEY_1}",
        f"-acme:{KEY_1}",
        f"{'t' * 65}:{KEY_1}",
        "acme:short",
        "acme:changeme",
        "acme:CHANGEME",
        f"{KEY_1},other:{KEY_1}",
        "acme:k3y with spaces-0123",
        "acme:ключ-0123456789abcdef",
    ],
)
def test_bad_entries_are_refused_without_echoing_the_key(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        make(api_keys=value)
    message = str(info.value)
    assert "API_KEYS" in message
    assert KEY_1 not in message and "short" not in message.split("API_KEYS", 1)[0]


def test_keys_are_masked_in_repr() -> None:
    settings = make(api_keys=f"acme:{KEY_1}")
    assert KEY_1 not in repr(settings) and "acme" in repr(settings)


def test_request_limits_have_defaults_and_bounds() -> None:
    settings = make()
    assert settings.api_max_body_bytes == 1024 * 1024
    assert settings.api_max_header_bytes == 16 * 1024
    with pytest.raises(ValidationError, match="api_max_body_bytes"):
        make(api_max_body_bytes=10)
