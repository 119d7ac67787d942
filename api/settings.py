"""API settings, and the one composition of every layer's settings the application reads.

Each layer owns its knobs: `storage.settings.StorageSettings` (database, pool, embeddings,
queue), `nodes.judges.settings.JudgeSettings` (JUDGE, OPENAI_*, LLM_*) and `ApiSettings`
here (API keys, request limits, background jobs, workers, callbacks). `Settings` composes
them by inheritance rather than by nesting (`settings.storage.db_pool_size`): every
environment variable keeps its flat name (DB_POOL_SIZE, not STORAGE__DB_POOL_SIZE), each
layer's validators run unchanged, and a composed `Settings` *is* a `StorageSettings` and a
`JudgeSettings`, so it is passed as-is to code that accepts only its own layer's class —
which is all storage and the judges ever import. The composition sits in `api/`, the top
layer; `graph.settings.GraphSettings` is the part a graph run needs on its own.

Nothing reads the environment at import time: `get_settings()` does, once, when called.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode

from graph.settings import GraphSettings
from storage.settings import DEFAULT_TENANT, SETTINGS_CONFIG

#: What a tenant name may look like (it is stored with each session).
TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
PLACEHOLDER_KEYS = frozenset({"changeme", "change-me", "secret", "test"})


class ApiKey(BaseModel):
    """One entry of API_KEYS: the secret sent in X-API-Key and the tenant it belongs to."""

    model_config = ConfigDict(frozen=True)

    tenant: str = DEFAULT_TENANT
    key: SecretStr

    def get_secret_value(self) -> str:
        """The key itself."""
        return self.key.get_secret_value()

    @classmethod
    def parse(cls, entry: str | SecretStr) -> ApiKey:
        """`tenant:key`, or a bare `key` (tenant `default`); checked by `ApiSettings`.

        Never raises, so that a validation error can only show the key masked.
        """
        text = (entry.get_secret_value() if isinstance(entry, SecretStr) else entry).strip()
        tenant, sep, key = text.partition(":")
        tenant, key = (tenant.strip(), key.strip()) if sep else (DEFAULT_TENANT, text)
        return cls(tenant=tenant, key=SecretStr(key))


class ApiSettings(BaseSettings):
    """The HTTP facade, background jobs, workers and callbacks; same names as the variables."""

    model_config = SETTINGS_CONFIG

    # --- HTTP facade ----------------------------------------------------------------
    api_keys: Annotated[list[ApiKey], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated `tenant:key` entries accepted in X-API-Key (a bare key belongs to"
            " tenant 'default'); empty = no authentication, every session in 'default'."
        ),
    )
    api_max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body accepted (else 413)."
    )
    api_max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="Largest total size of the request headers (names + values; else 431).",
    )

    # --- background jobs (procrastinate) and callbacks --------------------------------
    job_max_attempts: int = Field(
        default=4,
        ge=1,
        le=50,
        description="Runs of an evaluation job before the session is `failed` (LLM failures).",
    )
    job_backoff_s: int = Field(
        default=2,
        ge=0,
        le=3600,
        description="Base of the jobs' exponential backoff: retry n waits JOB_BACKOFF_S**n s.",
    )
    worker_heartbeat_s: float = Field(
        default=10.0, gt=0, le=3600, description="How often a worker records that it is alive."
    )
    worker_stalled_after_s: float = Field(
        default=30.0,
        gt=0,
        le=86400,
        description="A worker silent this long is dead: its running jobs are retried.",
    )
    callback_secret: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key signing the callbacks of tenant `default` only (bare API "
        "keys or no authentication); a `default:` entry of CALLBACK_SECRETS wins over it.",
    )
    callback_secrets: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        description="Per-tenant callback keys: `tenant:secret,tenant2:secret2`. A tenant "
        "without one cannot ask for callbacks (422 on callback_url).",
    )
    callback_max_attempts: int = Field(default=6, ge=1, le=50)
    callback_backoff_s: int = Field(
        default=2, ge=0, le=3600, description="Callback retry n waits CALLBACK_BACKOFF_S**n s."
    )
    callback_timeout_s: float = Field(default=10.0, gt=0, le=300)

    @field_validator("callback_secrets", mode="before")
    @classmethod
    def _split_callback_secrets(cls, value: object) -> object:
        if isinstance(value, str):
            pairs = [part.strip() for part in value.split(",") if part.strip()]
            entries = [pair.partition(":") for pair in pairs]
            if any(
                not sep or not secret.strip() or not TENANT_PATTERN.fullmatch(tenant.strip())
                for tenant, sep, secret in entries
            ):
                raise ValueError(
                    "CALLBACK_SECRETS entries are `tenant:secret` (tenant as in API_KEYS, "
                    "secret not empty)"
                )
            return {tenant.strip(): secret.strip() for tenant, _, secret in entries}
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_api_keys(cls, value: object) -> object:
        if isinstance(value, str | SecretStr):
            value = value.get_secret_value() if isinstance(value, SecretStr) else value
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return [
                ApiKey.parse(item) if isinstance(item, str | SecretStr) else item for item in value
            ]
        return value

    @field_validator("api_keys")
    @classmethod
    def _refuse_placeholder_keys(cls, value: list[ApiKey]) -> list[ApiKey]:
        seen: set[str] = set()
        for entry in value:
            if not TENANT_PATTERN.fullmatch(entry.tenant):
                raise ValueError(
                    "API_KEYS tenants must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
                    " (entries are 'tenant:key' or a bare key)"
                )
            secret = entry.get_secret_value()
            if secret.lower() in PLACEHOLDER_KEYS or len(secret) < 12:
                raise ValueError("API_KEYS entries must be real secrets of 12+ characters")
            if not (secret.isascii() and secret.isprintable()) or " " in secret:
                raise ValueError("API_KEYS keys must be printable ASCII without spaces")
            if secret in seen:
                raise ValueError("API_KEYS lists the same key twice")
            seen.add(secret)
        return value


class Settings(GraphSettings, ApiSettings):
    """Every tunable of turnjudge: storage's, the judges' and the API's, under flat names."""

    model_config = SETTINGS_CONFIG


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment (on first call)."""
    return Settings()
