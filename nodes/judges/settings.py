"""Judge settings: which judge grades answers and how the LLM behind it is reached.

The judges own these knobs (JUDGE, OPENAI_*, LLM_*); `api.settings.Settings` composes them
with the other layers' for the application, and `graph.settings.GraphSettings` with storage's
for a graph run on its own (LangGraph Studio). New judge knobs (juries, debate modes...) go
here as fields; `graph.context.Context` may expose them per run under the same names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from storage.settings import SETTINGS_CONFIG


class JudgeKind(StrEnum):
    """Which judge evaluates answers: an LLM, the offline heuristic, or auto-detect."""

    AUTO = "auto"
    LLM = "llm"
    HEURISTIC = "heuristic"


#: `model@endpoint` in JUDGE_MODELS: the endpoint starts at the first "@http(s)://", so a
#: model name may itself hold an "@" (it never holds "@http").
_AT_ENDPOINT = re.compile(r"^(?P<model>.*?)@(?P<endpoint>https?://.*)$", re.IGNORECASE)


def normalise_endpoint(url: str, variable: str) -> str:
    """An OpenAI-compatible base URL without its trailing "/", or a ValueError naming `variable`."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{variable}: {url!r} is not an http(s) URL with a host")
    return url.strip().rstrip("/")


@dataclass(frozen=True)
class JuryModel:
    """One JUDGE_MODELS entry: a model and the endpoint serving it (None = OPENAI_BASE_URL)."""

    model: str
    endpoint: str | None = None


def parse_jury_model(entry: str) -> JuryModel:
    """`model` or `model@http(s)://host[:port]/path` (a ValueError naming JUDGE_MODELS)."""
    found = _AT_ENDPOINT.match(entry.strip())
    if found is None:
        return JuryModel(entry.strip())
    model = found["model"].strip()
    if not model:
        raise ValueError(f"JUDGE_MODELS: {entry!r} names an endpoint but no model")
    return JuryModel(model, normalise_endpoint(found["endpoint"], "JUDGE_MODELS"))


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
        description="Comma-separated models that each judge every item (a jury); "
        "`model@http(s)://host/v1` seats one on another OpenAI-compatible endpoint; "
        "empty = LLM_MODEL alone.",
    )
    judge_api_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="JSON object: API key per JUDGE_MODELS endpoint (base URL -> key). An "
        "endpoint without one gets a placeholder key, never OPENAI_API_KEY.",
    )
    judge_sample_temperature: float = Field(
        default=0.7,
        ge=0,
        le=2,
        description="Sampling temperature when JUDGE_SAMPLES > 1 (a single verdict uses 0).",
    )
    judge_score_weighting: Literal["none", "logprobs"] = Field(
        default="none",
        description="`logprobs`: ask for token logprobs and record the overall score "
        "weighted by its alternatives' probabilities (G-Eval) in `details.score_distribution`; "
        "the stored score stays the sampled one.",
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
            entries = [str(part).strip() for part in value if str(part).strip()]
            for entry in entries:
                parse_jury_model(entry)  # a malformed endpoint is refused here, named
            return list(dict.fromkeys(entries))
        return value

    @field_validator("judge_api_keys", mode="after")
    @classmethod
    def _normalise_key_endpoints(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return {normalise_endpoint(url, "JUDGE_API_KEYS"): key for url, key in value.items()}

    @model_validator(mode="after")
    def _keys_name_jury_endpoints(self) -> Self:
        """A key for an endpoint no juror uses is a typo (its juror would go keyless)."""
        used = {jury.endpoint for jury in self.jury_models if jury.endpoint is not None}
        unknown = sorted(set(self.judge_api_keys) - used)
        if unknown:
            raise ValueError(
                f"JUDGE_API_KEYS names {', '.join(unknown)}, which no JUDGE_MODELS entry uses "
                f"(endpoints in JUDGE_MODELS: {', '.join(sorted(used)) or 'none'})"
            )
        return self

    @property
    def jury_models(self) -> list[JuryModel]:
        """The jury's models (LLM_MODEL alone by default) with their endpoints.

        An entry whose endpoint is OPENAI_BASE_URL itself is on the default endpoint (None).
        """
        default = self.openai_base_url.strip().rstrip("/") if self.openai_base_url else None
        models = [parse_jury_model(entry) for entry in self.judge_models] or [
            JuryModel(self.llm_model)
        ]
        return [
            JuryModel(m.model) if m.endpoint is not None and m.endpoint == default else m
            for m in models
        ]

    def endpoint_api_key(self, endpoint: str) -> SecretStr | None:
        """The key for a juror endpoint (JUDGE_API_KEYS), None = send a placeholder.

        Never OPENAI_API_KEY: that key belongs to OPENAI_BASE_URL (or api.openai.com), and
        another host, often plain-HTTP on a LAN, must not receive it.
        """
        return self.judge_api_keys.get(endpoint)

    @property
    def llm_configured(self) -> bool:
        """Whether an OpenAI-compatible endpoint is configured (a key or a base URL)."""
        return self.openai_api_key is not None or bool(self.openai_base_url)
