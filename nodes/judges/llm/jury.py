"""LLM juries: who sits on one (JUDGE_MODELS x JUDGE_SAMPLES) and how verdicts combine.

A juror may sit on another OpenAI-compatible endpoint than the judge's (JUDGE_MODELS entry
`model@http(s)://host/v1`): models from different providers disagree for different reasons,
which is what a jury is for. `details.agreement.jurors[].endpoint` names each one's host.

One verdict at temperature 0 says nothing about how much it can be trusted; several verdicts
(samples of one model, or several models) do. The stored score is the **median** of the
jurors' scores (robust to one outlier juror, unlike the mean), each criterion's score likewise,
and `details.agreement` keeps every juror's scores, the spread and a confidence label.

Confidence, from the spread (highest minus lowest juror score, on the 0-100 scale):
- `high`: spread <= 10, the jurors agree within half a level band (bands are 20 wide);
- `medium`: spread <= 20, they agree within one level band;
- `low`: spread > 20, they disagree by more than a level: a human should look.

The texts (analysis, feedback, strengths, ...) are those of the juror whose overall score is
closest to the median (the first such juror on ties), and each criterion's reason and
evidence are those of the juror closest to the criterion's median, so the stored reason
argues for the stored score. Flags are the union (one juror noticing an injection attempt
is enough). Usage sums every juror's tokens and calls. With JUDGE_SCORE_WEIGHTING=logprobs
each juror's probability-weighted score is kept beside its sampled one (`jurors[].weighted`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from nodes.judges.details import (
    Agreement,
    Confidence,
    CriterionAgreement,
    EvaluationDetails,
    JurorScore,
    RubricScore,
    Usage,
)
from nodes.judges.settings import JuryModel

#: Spread (0-100) at or under which a jury's agreement is `high`, then `medium`; else `low`.
HIGH_AGREEMENT_SPREAD = 10.0
MEDIUM_AGREEMENT_SPREAD = 20.0


@dataclass(frozen=True)
class Juror:
    """One seat of a jury: a model, its sample number, its temperature and its endpoint."""

    model: str
    sample: int
    temperature: float
    endpoint: str | None = None
    """Base URL of the OpenAI-compatible server it asks; None = the judge's own client."""


def seat_jurors(
    models: Sequence[str | JuryModel], samples: int, sample_temperature: float
) -> list[Juror]:
    """The jury of `samples` verdicts from each of `models` (one juror = today's single call).

    A plain string is a model on the judge's own endpoint. A single sample per model is drawn
    at temperature 0 (reproducible); repeated samples of one model at temperature 0 would
    repeat each other, so they use `sample_temperature`.
    """
    temperature = 0.0 if samples == 1 else sample_temperature
    seats = [JuryModel(m) if isinstance(m, str) else m for m in models]
    return [
        Juror(seat.model, sample, temperature, seat.endpoint)
        for seat in seats
        for sample in range(1, samples + 1)
    ]


def confidence(spread: float) -> Confidence:
    """The confidence label of a spread (see the module docstring for the thresholds)."""
    if spread <= HIGH_AGREEMENT_SPREAD:
        return "high"
    if spread <= MEDIUM_AGREEMENT_SPREAD:
        return "medium"
    return "low"


def _median(values: Sequence[float]) -> float:
    return round(float(statistics.median(values)), 1)


def _closest(values: Sequence[float], target: float) -> int:
    """Index of the first value closest to `target`."""
    return min(range(len(values)), key=lambda i: (abs(values[i] - target), i))


def _spread(values: Sequence[float]) -> float:
    return round(max(values) - min(values), 1)


def combine(
    jurors: Sequence[Juror],
    verdicts: Sequence[EvaluationDetails],
    latency_ms: float,
    hosts: Sequence[str | None] | None = None,
) -> EvaluationDetails:
    """One evaluation from a jury's verdicts (same order as `jurors`): medians + agreement.

    Args:
        jurors: The seats, in order.
        verdicts: Each juror's complete details.
        latency_ms: Wall time of the whole jury (its jurors ran in parallel).
        hosts: Each juror's endpoint host (`host:port`), recorded beside its score; None =
            not known (a langchain chat model).
    """
    scores = [v.score for v in verdicts]
    median = _median(scores)
    lead = verdicts[_closest(scores, median)]
    criteria = list(dict.fromkeys(name for v in verdicts for name in v.rubrics))
    rubrics: dict[str, RubricScore] = {}
    agreement: dict[str, CriterionAgreement] = {}
    for name in criteria:
        scored = [v.rubrics[name] for v in verdicts if name in v.rubrics]
        values = [r.score for r in scored]
        middle = _median(values)
        # the reason and evidence of the juror closest to the median argue for it
        rubrics[name] = scored[_closest(values, middle)].model_copy(update={"score": middle})
        agreement[name] = CriterionAgreement(
            spread=_spread(values), confidence=confidence(_spread(values))
        )
    spread = _spread(scores)
    flags = list(dict.fromkeys(flag for v in verdicts for flag in v.flags))
    models = ",".join(dict.fromkeys(j.model for j in jurors))
    return lead.model_copy(
        update={
            "score": median,
            "rubrics": rubrics,
            "flags": flags,
            "judge": lead.judge.model_copy(update={"model": models}),
            "agreement": Agreement(
                jurors=[
                    JurorScore(
                        model=j.model,
                        endpoint=host,
                        sample=j.sample,
                        score=v.score,
                        weighted=v.score_distribution.weighted if v.score_distribution else None,
                        rubrics={k: r.score for k, r in v.rubrics.items()},
                    )
                    for j, v, host in zip(
                        jurors, verdicts, hosts or [None] * len(jurors), strict=True
                    )
                ],
                spread=spread,
                stdev=round(statistics.pstdev(scores), 2),
                confidence=confidence(spread),
                rubrics=agreement,
            ),
            "usage": Usage.total(v.usage for v in verdicts),
            "latency_ms": round(latency_ms, 1),
            # the lead juror's distribution is not the median's: each juror's is in `jurors`
            "score_distribution": None,
        }
    )
