"""Pure parts of the queue: callback URL checks, signatures, settings, retry policy."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from procrastinate import RetryStrategy

from api.callbacks import callback_secret, require_callback_secret, sign, verify_signature
from api.jobs import RETRYABLE, _strategy
from api.settings import Settings
from api.validation import InvalidRequestError, check_callback_url
from nodes.close_session import EvaluationIncompleteError
from storage.settings import DEFAULT_TENANT


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "https://hooks.example.com/t/1?x=2"])
def test_http_and_https_callback_urls_are_accepted(url: str) -> None:
    assert check_callback_url(url) == url
    assert check_callback_url(None) is None


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://host/x",
        "javascript:alert(1)",
        "http://",
        "/relative",
        "http://host/a b",
        "http://host/\x00",
        42,
    ],
)
def test_other_callback_urls_are_refused(url: object) -> None:
    with pytest.raises(InvalidRequestError) as error:
        check_callback_url(url)
    assert error.value.field == "callback_url"


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"session_id": "x"}'
    expected = hmac.new(b"k" * 16, body, hashlib.sha256).hexdigest()
    assert sign(b"k" * 16, body) == f"sha256={expected}"
    assert verify_signature(b"k" * 16, body, f"sha256={expected}")
    assert not verify_signature(b"k" * 16, body + b" ", f"sha256={expected}")
    assert not verify_signature(b"other-secret-00", body, f"sha256={expected}")
    assert not verify_signature(b"k" * 16, body, None)


def test_each_tenant_signs_with_its_own_secret_only() -> None:
    """CALLBACK_SECRET belongs to tenant `default`; no tenant falls back to another's key."""
    settings = Settings(
        callback_secret="default-secret-123",
        callback_secrets="acme:acme-secret-456, globex:globex-secret-789",
    )
    assert callback_secret(settings, "acme") == b"acme-secret-456"
    assert callback_secret(settings, "globex") == b"globex-secret-789"
    assert callback_secret(settings, "initech") is None
    assert callback_secret(settings, DEFAULT_TENANT) == b"default-secret-123"
    assert callback_secret(Settings(), DEFAULT_TENANT) is None
    overridden = Settings(
        callback_secret="default-secret-123", callback_secrets="default:entry-secret-000"
    )
    assert callback_secret(overridden, DEFAULT_TENANT) == b"entry-secret-000"


def test_a_tenant_without_a_secret_cannot_ask_for_a_callback() -> None:
    settings = Settings(callback_secrets="acme:acme-secret-456")
    require_callback_secret(settings, "acme", "https://hooks.example/x")
    require_callback_secret(settings, "initech", None)  # no callback asked: nothing to sign
    with pytest.raises(InvalidRequestError) as error:
        require_callback_secret(settings, "initech", "https://hooks.example/x")
    assert error.value.field == "callback_url"
    assert "initech" in str(error.value)


@pytest.mark.parametrize(
    "value", ["no-colon-here", "acme:", ":secret", "bad tenant:secret", "a:b,,c"]
)
def test_malformed_tenant_secrets_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="tenant:secret"):
        Settings(callback_secrets=value)


def test_retry_policy_counts_runs_not_retries() -> None:
    """JOB_MAX_ATTEMPTS counts runs; procrastinate's max_attempts counts retries (0 = forever)."""
    assert _strategy(1, 2, RETRYABLE) is False
    strategy = _strategy(4, 2, RETRYABLE)
    assert isinstance(strategy, RetryStrategy)
    assert strategy.max_attempts == 3
    assert strategy.exponential_wait == 2
    assert EvaluationIncompleteError in tuple(strategy.retry_exceptions or ())
