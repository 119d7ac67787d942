"""The shape of an evaluation's `details` JSONB, shared by every judge.

`score` (0-100) and `analysis` are required (the database CHECK insists); the rest follows
seed 000 §4.1 (feedback, keywords, strengths, improvements) and seed 002 (rubrics, intent,
intent_types: see `nodes.judges.intents`), plus what
an operator needs to trust a score: which judge produced it (`judge`), suspected prompt
injection (`flags`), how far a jury agreed (`agreement`), a flow debate's
arguments (`debate`), the probability-weighted score where logprobs allow it
(`score_distribution`), token `usage` and `latency_ms`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field


class RubricScore(BaseModel):
    """One criterion's score and the reason for it."""

    score: float = Field(ge=0, le=100)
    reason: str
    evidence: list[str] | None = Field(
        default=None, description="LLM judge: the quotes from the answer the reason rests on."
    )


class JudgeInfo(BaseModel):
    """Who judged: `kind` is honest about heuristic vs LLM."""

    kind: Literal["llm", "heuristic"]
    model: str
    prompt_version: str


class Usage(BaseModel):
    """Tokens spent by an LLM judge on this evaluation (all attempts included)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    calls: int = 0

    @classmethod
    def total(cls, usages: Iterable[Usage | None]) -> Usage:
        """The usage of several calls together (a jury, a debate)."""
        parts = [u for u in usages if u is not None]
        return cls(
            input_tokens=sum(u.input_tokens for u in parts),
            output_tokens=sum(u.output_tokens for u in parts),
            total_tokens=sum(u.total_tokens for u in parts),
            calls=sum(u.calls for u in parts),
        )


Confidence = Literal["high", "medium", "low"]


class CriterionAgreement(BaseModel):
    """How far a jury's scores of one criterion lie apart."""

    spread: float = Field(ge=0, le=100, description="Highest minus lowest juror score.")
    confidence: Confidence


class JurorScore(BaseModel):
    """One juror's verdict, as scored (its texts are not kept: the median's are stored)."""

    model: str
    endpoint: str | None = Field(
        default=None, description="Host (and port) of the OpenAI-compatible server asked."
    )
    sample: int = Field(ge=1, description="1-based sample number of this model.")
    score: float = Field(ge=0, le=100)
    weighted: float | None = Field(
        default=None, ge=0, le=100, description="JUDGE_SCORE_WEIGHTING=logprobs, when available."
    )
    rubrics: dict[str, float] = Field(default_factory=dict)


class Agreement(BaseModel):
    """A jury's agreement (`nodes.judges.llm.jury`): every juror's score, the spread, a label."""

    method: Literal["median"] = "median"
    jurors: list[JurorScore]
    spread: float = Field(ge=0, le=100, description="Highest minus lowest juror score.")
    stdev: float = Field(ge=0, description="Population standard deviation of juror scores.")
    confidence: Confidence
    rubrics: dict[str, CriterionAgreement] = Field(default_factory=dict)


class ScoreDistribution(BaseModel):
    """JUDGE_SCORE_WEIGHTING=logprobs: the overall score weighted by its token probabilities.

    See `nodes.judges.llm.logprobs`. The stored `score` stays the sampled one; `weighted` is
    recorded beside it (for calibration and review), or why it could not be computed.
    """

    status: Literal["ok", "unavailable"]
    sampled: float = Field(
        ge=0, le=100, description="The overall score the model wrote (before any penalty)."
    )
    weighted: float | None = Field(
        default=None, ge=0, le=100, description="sum(p*v)/sum(p) over integer alternatives."
    )
    mass: float | None = Field(
        default=None, ge=0, le=1, description="Probability on integer 0-100 alternatives."
    )
    reason: str | None = Field(default=None, description="Why `unavailable`.")


class DebateArgument(BaseModel):
    """One participant of a flow debate (HOLISTIC_MODE=debate): its grade and why."""

    score: float = Field(ge=0, le=100)
    analysis: str
    rubrics: dict[str, RubricScore] = Field(default_factory=dict)


class EvaluationDetails(BaseModel):
    """What is stored in `prompt_evaluations.details`."""

    score: float = Field(ge=0, le=100)
    analysis: str
    rubrics: dict[str, RubricScore] = Field(default_factory=dict)
    feedback: str | None = None
    strengths: list[str] = Field(default_factory=list)
    improvements: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    intent: str | None = Field(default=None, description="TURN_EVAL: the question's category.")
    intent_types: list[str] = Field(
        default_factory=list,
        description="TURN_EVAL: what the answer did (closed vocabulary, nodes.judges.intents)",
    )
    flags: list[str] = Field(
        default_factory=list,
        description="e.g. 'prompt_injection:score_demand'; see nodes.judges.injection",
    )
    judge: JudgeInfo
    agreement: Agreement | None = Field(
        default=None, description="Only for a jury (JUDGE_SAMPLES / JUDGE_MODELS)."
    )
    debate: dict[str, DebateArgument] | None = Field(
        default=None,
        description="HOLISTIC_FLOW with HOLISTIC_MODE=debate: strict, generous, neutral, verdict.",
    )
    score_distribution: ScoreDistribution | None = Field(
        default=None,
        description="JUDGE_SCORE_WEIGHTING=logprobs, single judge: the probability-weighted "
        "score (a jury records each juror's in `agreement.jurors[].weighted`).",
    )
    usage: Usage | None = None
    latency_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object to store (None fields omitted)."""
        return self.model_dump(mode="json", exclude_none=True)
