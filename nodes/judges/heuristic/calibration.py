"""The heuristic judge's calibration constants, read from `lexicons/calibration.json`.

Cosine curves are per embedding model and language; a language missing for a model means
the model's cosine is not informative for it (all-MiniLM-L6-v2 on Korean), and the judge
measures with words instead (content units and the English <-> Korean term map).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from nodes.judges.lexicons import load

Curve = tuple[float, float]


@dataclass(frozen=True)
class Calibration:
    """Every constant the heuristic scorers use (see calibration.json for their meaning)."""

    relevance: Mapping[str, Mapping[str, Curve]]
    point_match: Mapping[str, Mapping[str, Curve]]
    lexical_relevance: Curve
    lexical_point_match: Curve
    embedding_share: float
    coverage_full_share: float
    coverage_covered_share_weight: float
    relevance_from_points: float
    rubric_concepts_full: int
    turn_weights: Mapping[str, float]
    flow_weights: Mapping[str, float]
    gate_full_relevance: float
    gate_floor: float
    gate_floor_lexical_only: float
    injection_penalty: float
    example_saturation: int
    figure_saturation: int
    term_saturation: int
    filler_penalty: float
    filler_penalty_max: float
    ideal_words: Curve
    long_penalty_per_word: float
    long_floor: float
    depth_trend_max: float
    flow_concept_target: float
    bank_match_cosine: float

    def curve_for(
        self, table: Mapping[str, Mapping[str, Curve]], model: str, language: str
    ) -> Curve | None:
        """The (low, high) cosine curve of `model` (a name or a path containing it)."""
        key = model.lower()
        for name, curves in table.items():
            if name in key:
                return curves.get(language)
        return None


def _curves(raw: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, Curve]]:
    return {m: {lang: (c[0], c[1]) for lang, c in v.items()} for m, v in raw.items()}


@cache
def calibration() -> Calibration:
    """The calibration (read once)."""
    raw = load("calibration")
    return Calibration(
        relevance=_curves(raw["relevance"]),
        point_match=_curves(raw["point_match"]),
        lexical_relevance=(raw["lexical_relevance"][0], raw["lexical_relevance"][1]),
        lexical_point_match=(raw["lexical_point_match"][0], raw["lexical_point_match"][1]),
        embedding_share=raw["embedding_share"],
        coverage_full_share=raw["coverage_full_share"],
        coverage_covered_share_weight=raw["coverage_covered_share_weight"],
        relevance_from_points=raw["relevance_from_points"],
        rubric_concepts_full=raw["rubric_concepts_full"],
        turn_weights=raw["turn_weights"],
        flow_weights=raw["flow_weights"],
        gate_full_relevance=raw["gate_full_relevance"],
        gate_floor=raw["gate_floor"],
        gate_floor_lexical_only=raw["gate_floor_lexical_only"],
        injection_penalty=raw["injection_penalty"],
        example_saturation=raw["example_saturation"],
        figure_saturation=raw["figure_saturation"],
        term_saturation=raw["term_saturation"],
        filler_penalty=raw["filler_penalty"],
        filler_penalty_max=raw["filler_penalty_max"],
        ideal_words=(raw["ideal_words"][0], raw["ideal_words"][1]),
        long_penalty_per_word=raw["long_penalty_per_word"],
        long_floor=raw["long_floor"],
        depth_trend_max=raw["depth_trend_max"],
        flow_concept_target=raw["flow_concept_target"],
        bank_match_cosine=raw["bank_match_cosine"],
    )


def clamp(value: float, low: float = 0.0, high: float = 100.0) -> float:
    """`value` bounded to [low, high]."""
    return max(low, min(high, value))


def curve(value: float, bounds: Curve) -> float:
    """0 at or below `low`, 100 at or above `high`, linear between."""
    low, high = bounds
    if high <= low:
        return 100.0 if value >= high else 0.0
    return clamp(100.0 * (value - low) / (high - low))


def r1(value: float) -> float:
    """Scores are reported with one decimal (and never -0.0)."""
    return round(value, 1) + 0.0
