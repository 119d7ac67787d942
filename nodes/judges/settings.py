"""Judge settings: which judge grades answers and how the LLM behind it is reached.

The judges own these knobs (JUDGE, OPENAI_*, LLM_*); `api.settings.Settings` composes them
with the other layers' for the application, and `graph.settings.GraphSettings` with storage's
for a graph run on its own (LangGraph Studio). New judge knobs (juries, debate modes...) go
here as fields; `graph.context.Context` may expose them per run under the same names.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode

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

    @property
    def llm_configured(self) -> bool:
        """Whether an OpenAI-compatible endpoint is configured (a key or a base URL)."""
        return self.openai_api_key is not None or bool(self.openai_base_url)
