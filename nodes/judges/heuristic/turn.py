"""The turn scorer: four criteria for one (cleaned) answer, given what embeddings measured.

Criteria (the same names as the LLM judge's), each 0-100 with a reason:

- ``relevance``: how well the answer's own text (restated question sentences removed)
  answers its question: the question-answer cosine through a curve calibrated per model and
  language, blended with the share of the question's content the answer addresses (words and
  term-map concepts, so 'cache' in a Korean answer counts for '캐시'). Where the model is not
  informative for the language, the word share alone.
- ``coverage``: the share of the question's expected points the answer covers, each point
  matched against every sentence of the answer (embedding per sentence, best match); without
  expected points, the number of the position's rubric concepts the answer touches.
- ``specificity``: concrete-experience markers, figures not copied from the question, and
  technical terms (either language), minus generic filler.
- ``communication``: length adequacy and real sentences (a list of terms is not an answer).

The score is a weighted sum scaled by a relevance gate; guard caps apply afterwards (the
judge does that). Everything here is a pure function of its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from nodes.judges.details import RubricScore
from nodes.judges.heuristic.calibration import Calibration, calibration, clamp, curve, r1
from nodes.judges.heuristic.features import (
    HANGUL,
    canonical_terms,
    example_markers,
    figure_digits,
    figures,
    filler,
    find_phrases,
    quote,
    shape,
    units_with_terms,
    word_equivalents,
)
from nodes.judges.rubrics import Rubric


@dataclass(frozen=True)
class Measured:
    """What the judge measured with embeddings for one answer (None: not informative)."""

    relevance_cosine: float | None
    point_cosines: tuple[float, ...] | None


@dataclass(frozen=True)
class Scored:
    """The four criteria of one answer and what they found."""

    relevance: float
    coverage: float
    specificity: float
    communication: float
    reasons: dict[str, str]
    weighted: float
    gate: float
    covered_points: tuple[str, ...]
    missing_points: tuple[str, ...]
    markers: tuple[str, ...]
    figures: tuple[str, ...]
    terms: tuple[str, ...]
    filler: tuple[str, ...]
    words: float
    concepts: tuple[str, ...] = field(default=())
    lexical_only: bool = False

    @property
    def score(self) -> float:
        """Weighted criteria times the relevance gate, 0-100."""
        return clamp(self.weighted * self.gate)

    def rubrics(self) -> dict[str, RubricScore]:
        """The rubric entries, in the fixed criteria order."""
        values = {
            "relevance": self.relevance,
            "coverage": self.coverage,
            "specificity": self.specificity,
            "communication": self.communication,
        }
        return {k: RubricScore(score=r1(v), reason=self.reasons[k]) for k, v in values.items()}


def relevance_score(
    question: str, text: str, measured: Measured, model: str, language: str, cal: Calibration
) -> tuple[float, str, bool]:
    """Relevance (0-100), its reason, and whether it rests on words only."""
    q_units = units_with_terms(question)
    a_units = units_with_terms(text)
    shared = q_units & a_units
    share = len(shared) / len(q_units) if q_units else 0.0
    lexical = curve(share, cal.lexical_relevance)
    words = f"{len(shared)} of {len(q_units)} of the question's content words/terms addressed"
    bounds = cal.curve_for(cal.relevance, model, language)
    if bounds is None or measured.relevance_cosine is None:
        return (
            lexical,
            (
                f"{model} is not informative for {language} text, so relevance is "
                f"word overlap only: {words}"
            ),
            True,
        )
    embedded = curve(measured.relevance_cosine, bounds)
    score = cal.embedding_share * embedded + (1 - cal.embedding_share) * lexical
    verdict = "on-topic" if embedded >= 70 else "partly on-topic" if embedded >= 30 else "off-topic"
    return (
        score,
        (
            f"{verdict}: question-answer cosine {measured.relevance_cosine:.3f} (0 at "
            f"<= {bounds[0]:.3f}, 100 at >= {bounds[1]:.3f}); {words}"
        ),
        False,
    )


def _point_match_lexical(point: str, answer_units: set[str], cal: Calibration) -> float:
    units = units_with_terms(point)
    if not units:
        return 0.0
    return curve(len(units & answer_units) / len(units), cal.lexical_point_match) / 100.0


def _coverage(
    text: str,
    points: Sequence[str],
    rubric: Rubric | None,
    rubric_note: str | None,
    measured: Measured,
    model: str,
    language: str,
    cal: Calibration,
) -> tuple[float, str, list[str], list[str], list[str]]:
    if points:
        bounds = cal.curve_for(cal.point_match, model, language)
        if bounds is not None and measured.point_cosines is not None:
            matches = [curve(c, bounds) / 100.0 for c in measured.point_cosines]
            how = "best sentence cosine per point"
        else:
            answer_units = units_with_terms(text)
            matches = [_point_match_lexical(p, answer_units, cal) for p in points]
            how = "shared words/terms per point"
        mean = math.fsum(matches) / len(matches)
        covered = [p for p, m in zip(points, matches, strict=True) if m >= 0.5]
        missing = [p for p, m in zip(points, matches, strict=True) if m < 0.5]
        # half for the share of points clearly covered, half for how close the answer comes
        # to all of them (so a near miss still counts a little)
        weight = cal.coverage_covered_share_weight
        score = clamp(
            weight * 100.0 * len(covered) / len(points)
            + (1 - weight) * 100.0 * mean / cal.coverage_full_share
        )
        return (
            score,
            (
                f"{len(covered)} of {len(points)} expected points covered ({how}; mean "
                f"match {mean:.2f}, {cal.coverage_full_share:.2f} = full marks)"
            ),
            covered,
            missing,
            [],
        )
    if rubric is None:
        return 50.0, f"neutral 50: {rubric_note}", [], [], []
    lowered = text.lower()
    hits = [
        c
        for c, words in rubric.concepts.items()
        if find_phrases(lowered, words) or any(w.lower() in lowered for w in words)
    ]
    score = 100.0 * min(len(hits), cal.rubric_concepts_full) / cal.rubric_concepts_full
    prefix = f"{rubric_note}; " if rubric_note else ""
    return (
        score,
        (
            f"{prefix}no expected points for this question: {len(hits)} of the "
            f"{len(rubric.concepts)} {rubric.title} rubric concepts touched "
            f"({quote([c.replace('_', ' ') for c in hits], 4) or 'none'})"
        ),
        [],
        [],
        hits,
    )


def _specificity(
    question: str,
    text: str,
    rubric: Rubric | None,
    cal: Calibration,
) -> tuple[float, str, list[str], list[str], list[str], list[str]]:
    markers = example_markers(text)
    found_figures = figures(text, figure_digits(question))
    rubric_terms = [
        t for t in (rubric.technical_terms if rubric else ()) if t.lower() in text.lower()
    ]
    concept_terms = canonical_terms(text)
    terms = list(dict.fromkeys([*concept_terms, *rubric_terms]))
    generic = filler(text)
    raw = 100.0 * (
        0.35 * min(1.0, len(markers) / cal.example_saturation)
        + 0.30 * min(1.0, len(found_figures) / cal.figure_saturation)
        + 0.35 * min(1.0, len(terms) / cal.term_saturation)
    )
    penalty = min(cal.filler_penalty_max, cal.filler_penalty * len(generic))
    score = clamp(raw - penalty)
    reason = "; ".join(
        [
            f"{len(markers)} concrete-example marker(s)"
            + (f" ({quote(markers, 3)})" if markers else ""),
            f"{len(found_figures)} figure(s)"
            + (f" ({quote(found_figures, 4)})" if found_figures else ""),
            f"{len(terms)} technical term(s)" + (f" ({quote(terms, 4)})" if terms else ""),
        ]
    )
    if generic:
        reason += f"; -{penalty:.0f} for generic phrases ({quote(generic, 4)})"
    return score, reason, markers, found_figures, terms, generic


def _communication(text: str, language: str, cal: Calibration) -> tuple[float, str, float]:
    words = word_equivalents(text)
    low, high = cal.ideal_words
    if words < low:
        length = 100.0 * words / low
        verdict = "too short"
    elif words <= high:
        length = 100.0
        verdict = "adequate length"
    else:
        length = max(cal.long_floor, 100.0 - cal.long_penalty_per_word * (words - high))
        verdict = "long"
    form = shape(text)
    sentences_score = clamp(100.0 * form.sentence_share / 0.8)
    score = 0.6 * length + 0.4 * sentences_score
    unit = (
        f"{len(HANGUL.findall(text))} Hangul syllables ~ {words:.0f} word equivalents"
        if language == "ko"
        else f"{words:.0f} words"
    )
    return (
        score,
        (
            f"{verdict}: {unit} (ideal {low:.0f}-{high:.0f}); "
            f"{form.sentence_share:.0%} of the text in full sentences"
        ),
        words,
    )


def score_answer(
    question: str,
    text: str,
    *,
    points: Sequence[str],
    rubric: Rubric | None,
    rubric_note: str | None,
    measured: Measured,
    model: str,
    language: str,
) -> Scored:
    """Score one answer's own text (injection removed, restated sentences discounted).

    Args:
        question: The question asked.
        text: The answer text to credit.
        points: The question's expected points ([] = use the rubric).
        rubric: The position's rubric (None: no rubric at all).
        rubric_note: Why the rubric is a fallback, if it is.
        measured: Cosines measured by the judge.
        model: The embedding model's name (selects the calibration).
        language: The interview's language ("en" or "ko").

    Returns:
        The four criteria and the evidence they found.
    """
    cal = calibration()
    rel, rel_reason, lexical_only = relevance_score(question, text, measured, model, language, cal)
    cov, cov_reason, covered, missing, concepts = _coverage(
        text, points, rubric, rubric_note, measured, model, language, cal
    )
    if points and cal.relevance_from_points * cov > rel:
        # An answer that makes the question's expected points answers that question, even
        # when its wording is far from the question's (the cosine of two texts of different
        # length and register is a noisy signal, for Korean in particular).
        rel = cal.relevance_from_points * cov
        rel_reason += (
            f"; raised to {rel:.0f} = {cal.relevance_from_points:.1f} x coverage "
            "(the answer makes the question's expected points)"
        )
        lexical_only = False
    spec, spec_reason, markers, found_figures, terms, generic = _specificity(
        question, text, rubric, cal
    )
    comm, comm_reason, words = _communication(text, language, cal)
    weights = cal.turn_weights
    weighted = math.fsum(
        weights[k] * v
        for k, v in (
            ("relevance", rel),
            ("coverage", cov),
            ("specificity", spec),
            ("communication", comm),
        )
    )
    floor = cal.gate_floor_lexical_only if lexical_only else cal.gate_floor
    answering = min(rel, cov) if points else rel
    gate = floor + (1 - floor) * min(1.0, answering / cal.gate_full_relevance)
    return Scored(
        relevance=rel,
        coverage=cov,
        specificity=spec,
        communication=comm,
        reasons={
            "relevance": rel_reason,
            "coverage": cov_reason,
            "specificity": spec_reason,
            "communication": comm_reason,
        },
        weighted=weighted,
        gate=gate,
        covered_points=tuple(covered),
        missing_points=tuple(missing),
        markers=tuple(markers),
        figures=tuple(found_figures),
        terms=tuple(terms),
        filler=tuple(generic),
        words=words,
        concepts=tuple(concepts),
        lexical_only=lexical_only,
    )


def answering(scored: Scored | None) -> float:
    """How well an answer answers its own question (0-100): relevance and coverage together."""
    if scored is None:
        return 0.0
    return math.sqrt(max(0.0, scored.relevance) * max(0.0, scored.coverage))
