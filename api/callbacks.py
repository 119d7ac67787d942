"""Signed completion callbacks: what is POSTed to a submission's `callback_url`, and how.

When a queued session completes or fails for good, the worker defers a delivery job that
POSTs a summary of the report to the submission's `callback_url`. The body is signed with
HMAC-SHA256 under the secret of the session's tenant and the signature travels in
`X-Turnjudge-Signature: sha256=<hex>`, so a receiver can check that the body came from
turnjudge and was not altered (`verify_signature` is what it should do).

Secrets are per tenant, never shared: `CALLBACK_SECRETS=tenant:secret,...`. The tenant
`default` (bare API keys, or no authentication) may instead use `CALLBACK_SECRET`; an entry
`default:...` in CALLBACK_SECRETS wins over it. A tenant without a secret cannot ask for a
callback: the submission is refused (422, field `callback_url`) and nothing is stored. A
delivery that fails (a network error or any non-2xx answer) is retried with exponential
backoff; each attempt is recorded with the session.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from api.interviews import SessionReport
from api.settings import Settings
from api.validation import InvalidRequestError
from storage.settings import DEFAULT_TENANT

SIGNATURE_HEADER = "X-Turnjudge-Signature"
DELIVERY_HEADER = "X-Turnjudge-Delivery"
ATTEMPT_HEADER = "X-Turnjudge-Attempt"


class CallbackFailedError(RuntimeError):
    """The receiver did not take the callback (network error or non-2xx): retried."""


def callback_secret(settings: Settings, tenant: str) -> bytes | None:
    """The signing key of `tenant`'s callbacks, if it has one.

    Only the tenant's own entry of CALLBACK_SECRETS; CALLBACK_SECRET is the key of tenant
    `default` alone (one tenant's key never signs another's callbacks).
    """
    secret = settings.callback_secrets.get(tenant)
    if secret is None and tenant == DEFAULT_TENANT:
        secret = settings.callback_secret
    return secret.get_secret_value().encode() if secret is not None else None


def require_callback_secret(settings: Settings, tenant: str, url: str | None) -> None:
    """Refuse a `callback_url` that could not be signed (no secret for `tenant`)."""
    if url is not None and callback_secret(settings, tenant) is None:
        variable = "CALLBACK_SECRET or " if tenant == DEFAULT_TENANT else ""
        raise InvalidRequestError(
            "callback_url",
            f"needs a signing secret for tenant {tenant!r} on the server "
            f"({variable}CALLBACK_SECRETS={tenant}:<secret>)",
        )


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value of `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def callback_body(report: SessionReport) -> bytes:
    """The summary POSTed: ids, status, scores, flags, error (never the transcript)."""
    holistic = report.holistic or {}
    summary: dict[str, Any] = {
        "event": f"session.{report.status}",
        "session_id": str(report.session_id),
        "participant_id": report.participant_id,
        "position": report.position,
        "status": report.status,
        "ended_at": report.ended_at,
        "turns": len(report.turns),
        "turn_score_mean": report.turn_score_mean,
        "holistic_score": holistic.get("score"),
        "flags": report.flags,
        "job_id": report.job_id,
        "attempts": report.attempts,
        "error": report.error,
    }
    return json.dumps(summary, ensure_ascii=False, sort_keys=True).encode()


async def post_callback(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    secret: bytes,
    delivery_id: int,
    attempt: int,
) -> str:
    """POST one delivery attempt; return its outcome, or raise `CallbackFailedError`."""
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body),
        DELIVERY_HEADER: str(delivery_id),
        ATTEMPT_HEADER: str(attempt),
        "User-Agent": "turnjudge-callback",
    }
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise CallbackFailedError(f"{type(exc).__name__}: {exc}") from exc
    outcome = f"HTTP {response.status_code}"
    if not 200 <= response.status_code < 300:
        raise CallbackFailedError(outcome)
    return outcome
