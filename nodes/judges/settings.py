"""Judge settings: which judge grades answers and how the LLM behind it is reached.

The judges own these knobs (JUDGE, OPENAI_*, LLM_*); `api.settings.Settings` composes them
with the other layers' for the application, and `graph.settings.GraphSettings` with storage's
for a graph run on its own (LangGraph Studio). New judge knobs (juries, debate modes...) go
here as fields; `graph.context.Context` may expose them per run under the same names.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from storage.settings import SETTINGS_CONFIG


class JudgeKind(StrEnum):
    """Which judge evaluates answers: an LLM, the offline heuristic, or auto-detect."""

    AUTO = "auto"
    LLM = "llm"
    HEURISTIC = "heuristic"


class JudgeSettings(BaseSettings):
    """The judge and its LLM endpoint; environment variables have the same names, upper-cased."""

    model_config = SETTINGS_CONFIG

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

    @property
    def llm_configured(self) -> bool:
        """Whether an OpenAI-compatible endpoint is configured (a key or a base URL)."""
        return self.openai_api_key is not None or bool(self.openai_base_url)
