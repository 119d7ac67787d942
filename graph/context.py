"""The graph's runtime context: plain, documented configuration of one run.

LangGraph Studio renders this model as a form (`GET /assistants/{id}/schemas` returns its JSON
schema) and `langgraph dev` builds it from the run's `context` object; Python callers pass
`context=Context(...)`. Every field is optional: unset means "as configured in the settings
(environment / `.env`)". The live services a run needs (storage, judge, question generator)
are not carried here: `graph.services` resolves them from this configuration, once per
process and configuration.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from graph.settings import GraphSettings
from nodes.judges.settings import JudgeKind

S = TypeVar("S", bound=GraphSettings)


class Context(BaseModel):
    """How a run judges and asks; unset fields fall back to the settings."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    judge: JudgeKind | None = None
    """Judge of the answers: `heuristic` (offline, deterministic), `llm` (an OpenAI-compatible
    endpoint, OPENAI_API_KEY / OPENAI_BASE_URL in the environment) or `auto` (the LLM when
    one is configured). Unset = JUDGE."""

    llm_model: str | None = Field(default=None, min_length=1, max_length=200)
    """Model name sent to the OpenAI-compatible endpoint (judge and question writing).
    Unset = LLM_MODEL."""

    llm_max_concurrency: int | None = Field(default=None, ge=1, le=1024)
    """LLM requests in flight at once, shared by every run with this configuration.
    Unset = LLM_MAX_CONCURRENCY."""

    llm_timeout_s: float | None = Field(default=None, gt=0, le=600)
    """Seconds before one LLM request is abandoned (and retried). Unset = LLM_TIMEOUT_S."""

    llm_max_retries: int | None = Field(default=None, ge=0, le=20)
    """Retries of an LLM request after a transport error, 429/5xx or invalid output.
    Unset = LLM_MAX_RETRIES."""

    def overrides(self) -> dict[str, Any]:
        """The settings this context sets (field name = settings name), unset ones left out."""
        return self.model_dump(exclude_none=True)

    def apply(self, settings: S) -> S:
        """`settings` with this context's values in place of the configured ones."""
        return settings.model_copy(update=self.overrides())
