"""The heuristic judge: an offline, deterministic *estimate* of answer quality.

It needs no LLM and no network, only the configured sentence embedder and the position's
rubric (`nodes/rubrics/<position>.json`). Every criterion is a rubric entry with a reason that
cites the evidence it counted.

TURN_EVAL (one answer), four criteria, each 0-100:

- ``relevance``: cosine similarity between the question and the answer embeddings, mapped
  through a curve calibrated per embedding model and language (see
  `RELEVANCE_CALIBRATION`), blended with the share of the question's keywords the answer
  reuses. Where the model is not informative for the language (all-MiniLM-L6-v2 on Korean
  text) relevance falls back to that keyword overlap alone.
- ``coverage``: how many distinct rubric concepts the answer touches (keywords matched as
  lowercase substrings), saturating at `COVERAGE_SATURATION` concepts.
- ``specificity``: concrete experience markers ("for example", "at my last company",
  "예를 들어", "이전 회사에서" ...), figures (numbers, %, ms, x ... not copied from the
  question) and the rubric's technical terms, minus a small penalty for generic filler
  ("best practices", "synergy", "최선을 다하겠습니다" ...).
- ``length``: 60-250 English-word equivalents is ideal; shorter answers lose points
  linearly, very long ones mildly. Korean is counted by Hangul syllables (2.5 syllables are
  about one English word), so mixed Korean/English text is measured fairly.

The overall score is a weighted sum (`TURN_WEIGHTS`) multiplied by a relevance gate, so an
off-topic answer cannot score high however long or keyword-laden it is. Suspected prompt
injection (`nodes.judges.injection`) is flagged; scoring always runs on `strip_injection(answer)`
and a flagged answer is further multiplied by `INJECTION_PENALTY`, so adding injected text to
an answer never raises its score.

HOLISTIC_FLOW (the conversation): ``consistency`` (answers stay in a sensible similarity band
with each other - neither drifting apart nor repeating themselves - and per-turn relevance
is stable), ``depth_progression`` (the level and trend of per-turn specificity),
``coverage_of_categories`` (distinct rubric concepts over the whole conversation, plus the
variety of question categories when known) and ``answer_quality`` (the mean per-turn score,
computed with exactly the TURN_EVAL logic).

Determinism: no randomness and no clock in the result (only `latency_ms`). Each text is
embedded on its own (batching pads texts to a common length, which perturbs the last digits
of a vector) and cached per judge, so a vector depends on its text alone: the same case gives
the same details whatever was evaluated before, and HOLISTIC_FLOW reuses the vectors (and
therefore reproduces the scores) of the TURN_EVALs computed earlier.

Unknown position: rather than failing an interview, coverage and technical terms are measured
against the union of all known rubrics, and the reasons say so (neutral 50 if no rubric exists
at all).

Limits: this is a proxy. It rewards the *form* of a good answer (on-topic, concrete, uses the
field's vocabulary, adequately long) and cannot check that what is said is true or sound; a
fluent, number-laden but wrong answer can score well. Korean relevance with the default
English-only MiniLM model relies on keyword overlap. The LLM judge is the real judge; this
one is the offline default and a sanity baseline, and `details.judge.kind` says "heuristic".
"""

from __future__ import annotations

import math
import re
import time
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias

from nodes.judges.details import EvaluationDetails, JudgeInfo, RubricScore
from nodes.judges.injection import detect_injection, strip_injection
from nodes.judges.judge import FlowCase, JudgeError, TurnCase
from nodes.judges.rubrics import Rubric, UnknownPositionError, available_positions, load_rubric
from storage.embeddings import Embedder, aembed_queries

PROMPT_VERSION = "heuristic-v1"
#: Texts whose vectors a judge keeps (about 3 KB each for a 384-d model).
EMBEDDING_CACHE_SIZE = 2048

Vector: TypeAlias = "array[float]"  # array("d"): compact storage for a cached embedding

# --------------------------------------------------------------------------------------------
# Calibration. Measured on tests/data/answer_pairs.json (40 question/better/worse triples, 25 en
# and 15 ko) with the real packaged models: "on-topic" = cos(question, better answer),
# "off-topic" = cos(question_i, any answer to another question_j) (1,200 en / 420 ko pairs).
#
#   all-MiniLM-L6-v2, en: on-topic p10 0.33 / median 0.57; off-topic median 0.10 / p90 0.25
#                         (AUC 0.99).
#   all-MiniLM-L6-v2, ko: on-topic median 0.49; off-topic median 0.50 (AUC 0.46): the English
#                         model does not separate Korean texts, so no embedding curve for ko.
#   multilingual-e5-small, en: on-topic median 0.885; off-topic median 0.82 (AUC 0.96).
#   multilingual-e5-small, ko: on-topic median 0.895; off-topic median 0.85 (AUC 0.94).
#
# A curve (low, high) maps cosine <= low to 0 and >= high to 100, linearly between: `low` sits
# at or slightly above the off-topic median and `high` at the on-topic median, so a typical
# on-topic answer gets ~100 and a typical off-topic one ~0.
#
# Answer-to-answer bands for consistency (answers to different questions of one position):
#   MiniLM en: strong answers p10 0.20 / median 0.33 / p90 0.47; ko: median 0.79.
#   e5 en: median 0.88 (p10 0.87); e5 ko: median 0.91 (p10 0.89). Identical answers -> 1.0.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingCalibration:
    """Cosine curves of one embedding model, by language ("en" or "ko").

    Attributes:
        relevance: language -> (low, high) cosine between question and answer; a language
            missing here means the model's cosine is not informative for it.
        consistency: language -> (low, high) band of answer-to-answer cosine considered
            consistent (below: drift, near 1.0: repetition).
    """

    relevance: Mapping[str, tuple[float, float]]
    consistency: Mapping[str, tuple[float, float]]


MINILM_CALIBRATION = EmbeddingCalibration(
    relevance={"en": (0.15, 0.55)},
    consistency={"en": (0.20, 0.70), "ko": (0.55, 0.95)},
)
E5_CALIBRATION = EmbeddingCalibration(
    relevance={"en": (0.82, 0.885), "ko": (0.85, 0.895)},
    consistency={"en": (0.84, 0.95), "ko": (0.87, 0.96)},
)
#: Model name (or a substring of a local path) -> calibration. Other models are uncalibrated:
#: relevance then uses question-keyword overlap only, and the reason says so.
RELEVANCE_CALIBRATION: Mapping[str, EmbeddingCalibration] = {
    "all-minilm-l6-v2": MINILM_CALIBRATION,
    "multilingual-e5-small": E5_CALIBRATION,
}

#: Share of the question's keywords found in the answer: (low, high) -> 0..100. Measured on
#: the same set: on-topic median 0.44 (en) / 0.36 (ko), off-topic median 0.0, p90 0.2 / 0.17.
LEXICAL_CURVE = (0.05, 0.40)
#: Weight of the embedding curve in relevance when the model is calibrated for the language.
EMBEDDING_SHARE = 0.8

TURN_WEIGHTS: Mapping[str, float] = {
    "relevance": 0.35,
    "coverage": 0.25,
    "specificity": 0.25,
    "length": 0.15,
}
FLOW_WEIGHTS: Mapping[str, float] = {
    "consistency": 0.2,
    "depth_progression": 0.2,
    "coverage_of_categories": 0.2,
    "answer_quality": 0.4,
}

#: Relevance gate: below `GATE_FULL_RELEVANCE` the weighted score is multiplied by a factor
#: growing linearly from the floor (relevance 0) to 1. The floor is higher when relevance
#: comes from keyword overlap only (a weaker signal that should not sink a good answer).
GATE_FULL_RELEVANCE = 40.0
GATE_FLOOR = 0.4
GATE_FLOOR_LEXICAL_ONLY = 0.7
#: A flagged answer's score (computed on the stripped text) is multiplied by this.
INJECTION_PENALTY = 0.8

COVERAGE_SATURATION = 3
EXAMPLE_SATURATION = 2
FIGURE_SATURATION = 3
TERM_SATURATION = 3
FILLER_PENALTY = 8.0
FILLER_PENALTY_MAX = 32.0

IDEAL_WORDS = (60.0, 250.0)
LONG_PENALTY_PER_WORD = 0.1
LONG_FLOOR = 60.0
HANGUL_CHARS_PER_WORD = 2.5
#: Depth progression: per-turn signal = share x specificity + (1 - share) x length; the trend
#: (fitted change over the second half of the conversation) moves the mean by at most this.
DEPTH_SPECIFICITY_SHARE = 0.75
DEPTH_TREND_MAX = 15.0
#: Share of the conversation's rubric concepts that counts as full coverage.
FLOW_CONCEPT_TARGET = 0.7

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LATIN = re.compile(r"[A-Za-z]")
_WORD = re.compile(r"\w+")
_EN_WORD = re.compile(r"[a-z][a-z0-9+/-]*")
_KO_WORD = re.compile(r"[\uac00-\ud7a3]+")
_FIGURE = re.compile(
    r"(?<![\w.])[$€£₩]?\d+(?:[.,]\d+)*(?:\s?(?:%|ms|s|x|k|m|gb|mb|tb|fps|rps|qps|배|건|명|개|"
    r"초|분|시간|일|주|개월|년|원|만|억|달러|퍼센트)(?![a-z]))?",
    re.IGNORECASE,
)

_EN_STOPWORDS = frozenset(
    "what when where which while would could should about there their these those have with "
    "your from into that this does tell time walk through explain describe give between "
    "difference them they were been being make made more most other than then only also some "
    "such very just like know think your yours how why who whom you are the and for".split()
)
_KO_STOP_STEMS = frozenset(
    "어떻 무엇 어떤 설명 말씀 주세 해주 있나 있으 하시 하나 대해 위해 경우 가장 그리 이를 이것 "
    "직접 한다 다면 했나 였나 사용 방법 겪으 골라 점을 것을 본적 있다 있습 합니 나요 까요".split()
)

_EXAMPLE_MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern, re.IGNORECASE))
    for label, pattern in (
        ("for example", r"\bfor (example|instance)\b|\be\.g\."),
        ("a past role", r"\b(at|in) (my|our) (last|previous|current|former) "
                        r"(company|job|role|team|employer)\b|\bat my last\b"),
        ("a specific occasion", r"\b(last|this) (year|quarter|month|week)\b|\bin (one|a similar|"
                                r"that) case\b|\bonce we\b|\bwhen we\b|\bon a (recent )?\w+ "
                                r"(project|redesign|migration|launch)\b"),
        ("first-person action", r"\bi (built|led|made|added|wrote|designed|implemented|"
                                r"introduced|migrated|replaced|ran|used|set up|found|measured|"
                                r"shipped|analysed|analyzed|proposed|moved|cut|reduced|fixed|"
                                r"changed|rewrote|owned|started|created|sat)\b"),
        ("team action", r"\bwe (had|built|used|saw|found|moved|added|replaced|switched|ran|cut|"
                        r"reduced|measured|shipped|processed|launched|rolled|tested|wrote|"
                        r"changed|fixed|agreed|kept|introduced|decided|dropped|spent|split|"
                        r"learned|compared|traced)\b"),
        ("an outcome", r"\b(which|that) (cut|reduced|dropped|improved|increased|raised|saved)\b|"
                       r"\b(went|dropped|fell|rose) (from|to|back)\b"),
        ("예를 들어", r"예를 들(어|면)|예컨대|가령"),
        ("이전 회사/팀", r"(이전|전|지난|예전|당시|현재) ?(회사|직장|팀|프로젝트|조직)"),
        ("구체적 시점", r"작년|지난 ?(해|달|분기|주)|예전에|당시|한 번은"),
        ("프로젝트/경험", r"프로젝트|경험(이|을|한|했)"),
        ("직접 한 일", r"(도입|개선|구축|설계|적용|분석|측정|해결|전환|교체|추가|제거|변경|"
                       r"구현|작성|확인)(했|하였|해서|한 결과|해 보니)"),
        ("결과 수치", r"(줄었|줄였|늘었|늘렸|개선되었|떨어졌|올라갔|내려갔|감소|증가)"),
    )
)
_FILLER: tuple[str, ...] = (
    "best practice", "best-in-class", "synerg", "leverag", "holistic", "cutting-edge",
    "state-of-the-art", "next-level", "seamless", "world-class", "blazing", "enterprise-grade",
    "game-chang", "paradigm", "cloud-native", "digital transformation", "robust",
    "passionate", "do my best", "nothing goes wrong", "very important", "make sure",
    "모범 사례", "최선을 다", "열심히", "혁신", "꼼꼼하게", "중요하다고 생각", "노력하",
    "잘 만들", "잘 해결", "고성능", "모던한", "최신 트렌드", "엔터프라이즈급", "클라우드 네이티브",
    "베스트 프랙티스",
)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _clamp(value: float, low: float = 0.0, high: float = 100.0) -> float:
    return max(low, min(high, value))


def _curve(value: float, low: float, high: float) -> float:
    """0 at or below `low`, 100 at or above `high`, linear between."""
    if high <= low:
        return 100.0 if value >= high else 0.0
    return _clamp(100.0 * (value - low) / (high - low))


def _r(value: float) -> float:
    """Scores are reported with one decimal (and never -0.0)."""
    return round(value, 1) + 0.0


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def _quote(items: Iterable[str], limit: int = 5) -> str:
    values = list(items)
    shown = ", ".join(values[:limit])
    return shown + (f" (+{len(values) - limit} more)" if len(values) > limit else "")


def detect_language(text: str, fallback: str = "en") -> str:
    """'ko' when Hangul dominates the letters of `text`, 'en' when Latin does.

    Args:
        text: Any text, possibly mixed.
        fallback: The language returned when `text` has no letters (e.g. the session's).

    Returns:
        "ko" or "en" (a fallback other than "ko" maps to "en").
    """
    hangul = len(_HANGUL.findall(text))
    latin = len(_LATIN.findall(text))
    if hangul == 0 and latin == 0:
        return "ko" if fallback.lower().startswith("ko") else "en"
    # A Hangul syllable carries about as much as 2-3 Latin letters.
    return "ko" if hangul * 2.5 >= latin else "en"


def word_equivalents(text: str) -> float:
    """Length in English-word equivalents: Latin/digit tokens + Hangul syllables / 2.5."""
    total = 0.0
    for token in _WORD.findall(text):
        hangul = len(_HANGUL.findall(token))
        total += hangul / HANGUL_CHARS_PER_WORD
        if hangul < len(token):
            total += 1.0
    return total


def _question_units(question: str) -> list[str]:
    """Content keywords of a question: 5-letter English prefixes, 2-syllable Korean stems."""
    lowered = question.lower()
    units: dict[str, None] = {}
    for word in _EN_WORD.findall(lowered):
        if len(word) >= 4 and word not in _EN_STOPWORDS:
            units[word[:5]] = None
    for word in _KO_WORD.findall(lowered):
        if len(word) >= 2 and word[:2] not in _KO_STOP_STEMS:
            units[word[:2]] = None
    return list(units)


def _find_all(text: str, needles: Iterable[str]) -> list[str]:
    """Needles occurring in `text` (lowercase substring match), ordered by first position."""
    found = []
    for needle in needles:
        index = text.find(needle.lower())
        if index >= 0 and needle:
            found.append((index, needle))
    return [needle for _, needle in sorted(set(found))]


def _distinct_keywords(found: Sequence[str]) -> tuple[str, ...]:
    """`found` without duplicates and without stems contained in a longer match."""
    unique = list(dict.fromkeys(found))
    return tuple(k for k in unique if not any(k != other and k in other for other in unique))


def _concept_label(concept: str) -> str:
    """'concurrency_messaging' -> 'concurrency messaging' (and drops a 'position/' prefix)."""
    return concept.rsplit("/", 1)[-1].replace("_", " ")


def _figures(text: str, exclude: set[str]) -> list[str]:
    """Distinct figures (numbers with an optional unit) not already in `exclude`."""
    seen: dict[str, None] = {}
    for match in _FIGURE.finditer(text):
        figure = re.sub(r"\s+", "", match.group(0).lower())
        digits = re.sub(r"[^\d.,]", "", figure)
        if digits and digits not in exclude:
            seen.setdefault(figure, None)
    return list(seen)


def _slope(values: Sequence[float]) -> float:
    """Least-squares slope of `values` against 0, 1, 2, ... (0 for fewer than two)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x = (n - 1) / 2
    mean_y = math.fsum(values) / n
    num = math.fsum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = math.fsum((i - mean_x) ** 2 for i in range(n))
    return num / den


def _calibration_for(model_name: str) -> EmbeddingCalibration | None:
    key = model_name.lower()
    for name, calibration in RELEVANCE_CALIBRATION.items():
        if name in key:
            return calibration
    return None


@lru_cache(maxsize=64)
def _rubric_for(position: str) -> tuple[Rubric | None, str | None]:
    """The position's rubric and, for an unknown position, a note about the fallback."""
    for candidate in dict.fromkeys((position, position.strip().lower())):
        try:
            return load_rubric(candidate), None
        except UnknownPositionError:
            continue
    known = available_positions()
    if not known:
        return None, f"no rubric exists (position {position!r})"
    concepts: dict[str, tuple[str, ...]] = {}
    terms: dict[str, None] = {}
    for name in known:
        rubric = load_rubric(name)
        for concept, words in rubric.concepts.items():
            concepts[f"{name}/{concept}"] = words
        terms.update(dict.fromkeys(rubric.technical_terms))
    union = Rubric(position=position, title=position, concepts=concepts,
                   technical_terms=tuple(terms))
    return union, f"position {position!r} has no rubric; measured against all rubrics"


# --------------------------------------------------------------------------------------------
# Per-turn scoring (pure, given the cosine)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TurnResult:
    """Everything computed for one turn (used by TURN_EVAL and HOLISTIC_FLOW)."""

    score: float
    rubrics: dict[str, RubricScore]
    relevance: float
    specificity: float
    length: float
    concepts: tuple[str, ...]
    keywords: tuple[str, ...]
    flags: tuple[str, ...]
    empty: bool
    analysis: str
    strengths: tuple[str, ...]
    improvements: tuple[str, ...]
    feedback: str


def _empty_result(reason: str, flags: Sequence[str], analysis: str) -> _TurnResult:
    rubrics = {name: RubricScore(score=0.0, reason=reason) for name in TURN_WEIGHTS}
    improvements = ["Answer the question: describe what you did, how, and the result."]
    if flags:
        improvements.append("Remove instructions aimed at the grader; they are ignored and "
                            "flagged.")
    return _TurnResult(
        score=0.0, rubrics=rubrics, relevance=0.0, specificity=0.0, length=0.0, concepts=(),
        keywords=(), flags=tuple(flags), empty=True, analysis=analysis, strengths=(),
        improvements=tuple(improvements), feedback=analysis,
    )


class _TurnScorer:
    """Scores one cleaned answer given its question-answer cosine."""

    def __init__(self, model_name: str) -> None:
        self._model_name = model_name
        self._calibration = _calibration_for(model_name)

    def relevance(
        self, question: str, answer: str, cosine: float | None, language: str
    ) -> tuple[float, str, bool]:
        """Relevance score, its reason, and whether it rests on keyword overlap only."""
        units = _question_units(question)
        lowered = answer.lower()
        reused = [u for u in units if u in lowered]
        overlap = len(reused) / len(units) if units else 0.0
        lexical = _curve(overlap, *LEXICAL_CURVE)
        overlap_text = f"{len(reused)} of {len(units)} question keywords reused"
        curve = None
        if self._calibration is not None:
            curve = self._calibration.relevance.get(language)
        if curve is None or cosine is None:
            why = (f"{self._model_name} is not calibrated for {language} text"
                   if self._calibration is not None
                   else f"no cosine calibration for {self._model_name}")
            return lexical, (f"{why}, so relevance is keyword overlap only: {overlap_text} "
                             f"({_quote(reused)})" if reused else
                             f"{why}, so relevance is keyword overlap only: {overlap_text}"), True
        embedded = _curve(cosine, *curve)
        score = EMBEDDING_SHARE * embedded + (1 - EMBEDDING_SHARE) * lexical
        verdict = "on-topic" if embedded >= 70 else "partly on-topic" if embedded >= 30 else (
            "off-topic")
        return score, (
            f"{verdict}: question-answer cosine {cosine:.3f} (0 at <= {curve[0]:.3f}, 100 at "
            f">= {curve[1]:.3f} for {self._model_name}, {language}); {overlap_text}"
        ), False

    @staticmethod
    def coverage(answer: str, rubric: Rubric | None, note: str | None) -> tuple[
        float, str, list[str], list[str]
    ]:
        """Coverage score, reason, concepts hit, and concept keywords found."""
        if rubric is None:
            return 50.0, f"neutral 50: {note}", [], []
        lowered = answer.lower()
        hits: list[tuple[str, list[str]]] = []
        for concept, words in rubric.concepts.items():
            found = _find_all(lowered, words)
            if found:
                hits.append((concept, found))
        score = 100.0 * min(len(hits), COVERAGE_SATURATION) / COVERAGE_SATURATION
        keywords = [w for _, found in hits for w in found]
        prefix = f"{note}; " if note else ""
        if not hits:
            return score, (f"{prefix}mentions none of the {len(rubric.concepts)} concepts of "
                           f"the {rubric.title} rubric"), [], []
        listed = "; ".join(f"{_concept_label(c)} ({_quote(f, 3)})" for c, f in hits)
        return score, (
            f"{prefix}mentions {len(hits)} of the {len(rubric.concepts)} concepts of the "
            f"{rubric.title} rubric: {listed} ({COVERAGE_SATURATION} = full marks)"
        ), [c for c, _ in hits], keywords

    @staticmethod
    def specificity(question: str, answer: str, rubric: Rubric | None) -> tuple[
        float, str, list[str], list[str], list[str], list[str]
    ]:
        """Specificity score, reason, markers, figures, technical terms and filler found."""
        markers = [label for label, pattern in _EXAMPLE_MARKERS if pattern.search(answer)]
        question_digits = {
            re.sub(r"[^\d.,]", "", m.group(0)) for m in _FIGURE.finditer(question)
        }
        figures = _figures(answer, question_digits)
        lowered = answer.lower()
        terms = _find_all(lowered, rubric.technical_terms) if rubric is not None else []
        filler = _find_all(lowered, _FILLER)
        raw = 100.0 * (
            0.35 * min(1.0, len(markers) / EXAMPLE_SATURATION)
            + 0.35 * min(1.0, len(figures) / FIGURE_SATURATION)
            + 0.30 * min(1.0, len(terms) / TERM_SATURATION)
        )
        penalty = min(FILLER_PENALTY_MAX, FILLER_PENALTY * len(filler))
        score = _clamp(raw - penalty)
        parts = [
            f"{len(markers)} concrete-example marker(s)"
            + (f" ({_quote(markers, 3)})" if markers else ""),
            f"{len(figures)} figure(s)" + (f" ({_quote(figures, 4)})" if figures else ""),
            f"{len(terms)} technical term(s)" + (f" ({_quote(terms, 4)})" if terms else ""),
        ]
        reason = "; ".join(parts)
        if filler:
            reason += f"; -{penalty:.0f} for generic phrases ({_quote(filler, 4)})"
        return score, reason, markers, figures, terms, filler

    @staticmethod
    def length(answer: str, language: str) -> tuple[float, str, float]:
        """Length score, reason and the length in English-word equivalents."""
        words = word_equivalents(answer)
        low, high = IDEAL_WORDS
        if words < low:
            score = 100.0 * words / low
            verdict = "too short"
        elif words <= high:
            score = 100.0
            verdict = "adequate"
        else:
            score = max(LONG_FLOOR, 100.0 - LONG_PENALTY_PER_WORD * (words - high))
            verdict = "long; mildly penalised"
        unit = (f"{len(_HANGUL.findall(answer))} Hangul syllables ~ {words:.0f} word "
                "equivalents" if language == "ko" else f"{words:.0f} words")
        return score, f"{verdict}: {unit} (ideal {low:.0f}-{high:.0f})", words

    def score(
        self,
        question: str,
        raw_answer: str,
        cosine: float | None,
        rubric: Rubric | None,
        rubric_note: str | None,
        fallback_language: str,
    ) -> _TurnResult:
        """The full per-turn evaluation of `raw_answer` (injection handled here)."""
        flags = detect_injection(raw_answer)
        answer = strip_injection(raw_answer)
        if not raw_answer.strip():
            return _empty_result("no answer was given", flags,
                                 "Heuristic estimate: no answer was given, so the score is 0.")
        if not answer:
            return _empty_result(
                "the answer consisted only of instructions aimed at the grader", flags,
                "Heuristic estimate: the answer consisted only of text addressed to the grader "
                f"(flagged: {', '.join(flags)}); with it removed nothing is left, score 0.",
            )
        language = detect_language(answer, fallback_language)
        rel, rel_reason, lexical_only = self.relevance(question, answer, cosine, language)
        cov, cov_reason, concepts, concept_words = self.coverage(answer, rubric, rubric_note)
        spec, spec_reason, markers, figures, terms, filler = self.specificity(
            question, answer, rubric
        )
        length, length_reason, words = self.length(answer, language)
        parts = {"relevance": rel, "coverage": cov, "specificity": spec, "length": length}
        weighted = math.fsum(TURN_WEIGHTS[name] * value for name, value in parts.items())
        floor = GATE_FLOOR_LEXICAL_ONLY if lexical_only else GATE_FLOOR
        gate = floor + (1 - floor) * min(1.0, rel / GATE_FULL_RELEVANCE)
        score = weighted * gate
        if flags:
            score *= INJECTION_PENALTY
        score = _r(_clamp(score))
        rubrics = {
            "relevance": RubricScore(score=_r(rel), reason=rel_reason),
            "coverage": RubricScore(score=_r(cov), reason=cov_reason),
            "specificity": RubricScore(score=_r(spec), reason=spec_reason),
            "length": RubricScore(score=_r(length), reason=length_reason),
        }
        keywords = _distinct_keywords(_find_all(answer.lower(), [*concept_words, *terms]))[:10]

        strengths: list[str] = []
        improvements: list[str] = []
        if rel >= 70:
            strengths.append("Stays on the question that was asked")
        elif rel < GATE_FULL_RELEVANCE:
            improvements.append("Answer the question that was asked; the answer drifts away "
                                "from it")
        if cov >= 66.6:
            strengths.append("Covers several core concepts: "
                             + _quote([_concept_label(c) for c in concepts], 3))
        elif rubric is not None and cov < 34:
            missing = [c for c in rubric.concepts if c not in concepts][:3]
            improvements.append(
                f"Connect the answer to core {rubric.title} concepts such as "
                f"{', '.join(_concept_label(c) for c in missing)}"
            )
        if markers and figures and spec >= 60:
            strengths.append("Gives concrete examples with numbers")
        elif terms and spec >= 60:
            strengths.append(f"Uses precise technical vocabulary ({_quote(terms, 3)})")
        if spec < 40:
            if not figures:
                improvements.append("Add a concrete example from your own work with measurable "
                                    "results (numbers, metrics)")
            else:
                improvements.append("Ground the answer in a specific situation you handled")
        if filler:
            improvements.append(f"Replace generic phrases ({_quote(filler, 3)}) with specifics")
        if words < IDEAL_WORDS[0]:
            improvements.append(f"Develop the answer: about {words:.0f} words is too short "
                                f"(aim for {IDEAL_WORDS[0]:.0f}-{IDEAL_WORDS[1]:.0f})")
        elif words > IDEAL_WORDS[1] * 1.5:
            improvements.append("Tighten the answer; it is long enough to lose the main point")
        elif length >= 100 and rel >= 40:
            strengths.append("Well-developed answer of adequate length")
        if flags:
            improvements.append("Remove instructions aimed at the grader; they are ignored, "
                                "penalised and flagged")

        band = ("strong" if score >= 75 else "solid" if score >= 55 else "partial"
                if score >= 35 else "weak")
        gate_text = (f"; x{gate:.2f} relevance gate (relevance {rel:.0f} < "
                     f"{GATE_FULL_RELEVANCE:.0f})" if gate < 1 else "")
        flag_text = (
            f" Suspected prompt injection ({', '.join(flags)}): the injected sentences were "
            f"removed before scoring and the score multiplied by {INJECTION_PENALTY}."
            if flags else ""
        )
        analysis = (
            f"Heuristic estimate (embeddings and keyword rules, not an LLM judgement): a {band} "
            f"answer. Weighted relevance {rel:.0f}, coverage {cov:.0f}, specificity {spec:.0f}, "
            f"length {length:.0f} = {weighted:.1f}{gate_text}.{flag_text}"
        )
        lead = improvements[0] if improvements else (
            strengths[0] if strengths else "Keep answers concrete")
        feedback = f"Heuristic estimate: {band} answer ({score:.0f}/100). {lead}."
        return _TurnResult(
            score=score, rubrics=rubrics, relevance=rel, specificity=spec, length=length,
            concepts=tuple(concepts), keywords=keywords, flags=tuple(flags), empty=False,
            analysis=analysis, strengths=tuple(strengths), improvements=tuple(improvements),
            feedback=feedback,
        )


# --------------------------------------------------------------------------------------------
# The judge
# --------------------------------------------------------------------------------------------


class HeuristicJudge:
    """Offline, deterministic judge built on embeddings and rubric keyword rules.

    Args:
        embedder: The sentence embedder (its vectors are L2-normalised).
        model_name: The embedder's model name; it selects the cosine calibration and is
            recorded in `details.judge.model`.
    """

    def __init__(self, embedder: Embedder, *, model_name: str = "all-MiniLM-L6-v2") -> None:
        self._embedder = embedder
        self._model_name = model_name
        self._scorer = _TurnScorer(model_name)
        self._info = JudgeInfo(kind="heuristic", model=model_name, prompt_version=PROMPT_VERSION)
        self._cache: OrderedDict[str, Vector] = OrderedDict()

    @property
    def kind(self) -> str:
        """Always "heuristic"."""
        return "heuristic"

    async def _embed(self, texts: Sequence[str]) -> list[Vector]:
        """One vector per text, each embedded on its own and cached.

        Embedding texts one at a time makes a vector depend on its text only (in a batch,
        padding to the longest text perturbs the last float digits), so results never depend
        on what was evaluated before; the cache makes re-embedding a question, or an answer
        already scored as a turn when the flow is judged, free.
        """
        vectors: list[Vector] = []
        for text in texts:
            vector = self._cache.get(text)
            if vector is None:
                try:
                    (raw,) = await aembed_queries(self._embedder, [text])
                except Exception as exc:  # the embedder is a black box (torch, onnx ...)
                    raise JudgeError(f"embedding failed: {exc}") from exc
                vector = array("d", raw)
                self._cache[text] = vector
                if len(self._cache) > EMBEDDING_CACHE_SIZE:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(text)
            vectors.append(vector)
        return vectors

    async def _score_turns(
        self, position: str, language: str, turns: Sequence[TurnCase]
    ) -> tuple[list[_TurnResult], list[Vector | None], Rubric | None, str | None]:
        """Per-turn results plus each cleaned answer's vector (None when empty)."""
        rubric, note = _rubric_for(position)
        cleaned = [strip_injection(t.answer) for t in turns]
        texts: list[str] = []
        index: list[tuple[int, int] | None] = []
        for turn, answer in zip(turns, cleaned, strict=True):
            if answer:
                index.append((len(texts), len(texts) + 1))
                texts.extend([turn.question, answer])
            else:
                index.append(None)
        vectors = await self._embed(texts)
        results: list[_TurnResult] = []
        answer_vectors: list[Vector | None] = []
        for turn, slots in zip(turns, index, strict=True):
            cosine = None
            if slots is not None:
                q_vec, a_vec = vectors[slots[0]], vectors[slots[1]]
                cosine = _dot(q_vec, a_vec)
                answer_vectors.append(a_vec)
            else:
                answer_vectors.append(None)
            results.append(
                self._scorer.score(turn.question, turn.answer, cosine, rubric, note,
                                   turn.language or language)
            )
        return results, answer_vectors, rubric, note

    async def evaluate_turn(self, case: TurnCase) -> EvaluationDetails:
        """TURN_EVAL details for one answered turn.

        Args:
            case: The question and answer to evaluate.

        Returns:
            Details with the rubric entries relevance, coverage, specificity and length.

        Raises:
            JudgeError: The embedder failed.
        """
        started = time.perf_counter()
        (result,), _, _, _ = await self._score_turns(case.position, case.language, [case])
        return EvaluationDetails(
            score=result.score,
            analysis=result.analysis,
            rubrics=result.rubrics,
            feedback=result.feedback,
            strengths=list(result.strengths),
            improvements=list(result.improvements),
            keywords=list(result.keywords),
            flags=list(result.flags),
            judge=self._info,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    async def evaluate_flow(self, case: FlowCase) -> EvaluationDetails:
        """HOLISTIC_FLOW details for the whole conversation.

        Args:
            case: All turns of the interview (answers may be empty).

        Returns:
            Details with the rubric entries consistency, depth_progression,
            coverage_of_categories and answer_quality.

        Raises:
            JudgeError: The conversation has no turns, or the embedder failed.
        """
        started = time.perf_counter()
        if not case.turns:
            raise JudgeError("cannot evaluate the flow of an empty conversation")
        turns = sorted(case.turns, key=lambda t: t.turn)
        results, vectors, rubric, note = await self._score_turns(
            case.position, case.language, turns
        )
        flags = list(dict.fromkeys(
            f"{flag}@turn{turn.turn}" for turn, r in zip(turns, results, strict=True)
            for flag in r.flags
        ))
        answered = [(t, r, v) for t, r, v in zip(turns, results, vectors, strict=True)
                    if not r.empty and v is not None]
        if not answered:
            reason = "no turn has an answer"
            return EvaluationDetails(
                score=0.0,
                analysis="Heuristic estimate: no question was answered, so the score is 0.",
                rubrics={name: RubricScore(score=0.0, reason=reason) for name in FLOW_WEIGHTS},
                feedback="Heuristic estimate: no answers to evaluate.",
                improvements=["Answer the interview questions."],
                flags=flags,
                judge=self._info,
                latency_ms=round((time.perf_counter() - started) * 1000, 1),
            )
        language = detect_language(" ".join(t.answer for t, _, _ in answered), case.language)
        consistency = self._consistency(
            [v for _, _, v in answered if v is not None],
            [r.relevance for _, r, _ in answered], language,
        )
        depth = self._depth([
            (t.turn, DEPTH_SPECIFICITY_SHARE * r.specificity
             + (1 - DEPTH_SPECIFICITY_SHARE) * r.length)
            for t, r in zip(turns, results, strict=True)
        ])
        coverage = self._coverage(turns, results, rubric, note)
        quality_values = [r.score for r in results]
        quality = math.fsum(quality_values) / len(quality_values)
        quality_reason = (
            "mean of the per-turn heuristic scores: "
            + ", ".join(f"turn {t.turn} {r.score:.0f}" for t, r in zip(turns, results,
                                                                       strict=True))
        )
        parts = {
            "consistency": consistency,
            "depth_progression": depth,
            "coverage_of_categories": coverage,
            "answer_quality": (quality, quality_reason),
        }
        score = _r(_clamp(math.fsum(FLOW_WEIGHTS[k] * v[0] for k, v in parts.items())))
        rubrics = {k: RubricScore(score=_r(v[0]), reason=v[1]) for k, v in parts.items()}

        strengths: list[str] = []
        improvements: list[str] = []
        labels = {
            "consistency": ("Answers are coherent with each other and consistently on-topic",
                            "Keep every answer anchored to its question; relevance and "
                            "content vary a lot between turns"),
            "depth_progression": ("Answers stay concrete (or get more concrete) as the "
                                  "interview goes on",
                                  "Bring concrete examples and figures to every answer, "
                                  "especially later ones"),
            "coverage_of_categories": ("Covers a broad range of the role's concepts",
                                       "Show breadth: relate answers to more of the role's "
                                       "core concepts"),
            "answer_quality": ("Individual answers are strong on average",
                               "Individual answers need more relevance, detail and examples"),
        }
        for key, (value, _) in parts.items():
            if value >= 70:
                strengths.append(labels[key][0])
            elif value < 45:
                improvements.append(labels[key][1])
        if flags:
            turns_flagged = sorted({f.rsplit("@turn", 1)[1] for f in flags}, key=int)
            improvements.append("Remove instructions aimed at the grader (turn "
                                f"{', '.join(turns_flagged)}); they are ignored and flagged")
        keywords = list(_distinct_keywords([k for r in results for k in r.keywords]))[:10]
        band = ("strong" if score >= 75 else "solid" if score >= 55 else "partial"
                if score >= 35 else "weak")
        unanswered = len(turns) - len(answered)
        analysis = (
            f"Heuristic estimate (embeddings and keyword rules, not an LLM judgement) of a "
            f"{len(turns)}-turn conversation: {band} overall. Consistency "
            f"{consistency[0]:.0f}, depth progression {depth[0]:.0f}, coverage "
            f"{coverage[0]:.0f}, answer quality {quality:.0f}."
            + (f" {unanswered} turn(s) without an answer count as 0." if unanswered else "")
            + (f" Suspected prompt injection: {', '.join(flags)} (ignored for scoring, "
               "penalised per turn)." if flags else "")
        )
        lead = improvements[0] if improvements else (
            strengths[0] if strengths else "Keep answers concrete")
        return EvaluationDetails(
            score=score,
            analysis=analysis,
            rubrics=rubrics,
            feedback=f"Heuristic estimate: {band} interview ({score:.0f}/100). {lead}.",
            strengths=strengths,
            improvements=improvements,
            keywords=keywords,
            flags=flags,
            judge=self._info,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    # ---------------------------------------------------------------- holistic criteria

    def _consistency(
        self, vectors: Sequence[Sequence[float]], relevances: Sequence[float], language: str
    ) -> tuple[float, str]:
        n = len(vectors)
        rel_mean = math.fsum(relevances) / n
        rel_std = math.sqrt(math.fsum((r - rel_mean) ** 2 for r in relevances) / n)
        stability = _clamp(100.0 - 2.0 * rel_std)
        stability_text = f"per-turn relevance {rel_mean:.0f} +/- {rel_std:.0f} -> {stability:.0f}"
        if n < 2:
            return 50.0, ("neutral 50: a single answer cannot be checked for consistency; "
                          + stability_text)
        calibration = _calibration_for(self._model_name)
        band = (calibration.consistency.get(language) if calibration is not None else None)
        pairs = [_dot(vectors[i], vectors[j]) for i in range(n) for j in range(i + 1, n)]
        mean_cos = math.fsum(pairs) / len(pairs)
        if band is None:
            return stability, (f"no answer-similarity calibration for {self._model_name}; "
                               + stability_text)
        low, high = band
        if mean_cos < low:
            band_score = _curve(mean_cos, low - (high - low) / 2, low)
            verdict = "answers drift apart"
        elif mean_cos > high:
            band_score = 100.0 - _curve(mean_cos, high, 1.0)
            verdict = "answers repeat each other"
        else:
            band_score = 100.0
            verdict = "answers hang together"
        score = 0.6 * band_score + 0.4 * stability
        return score, (
            f"{verdict}: mean pairwise answer cosine {mean_cos:.3f} (consistent band "
            f"{low:.2f}-{high:.2f}) -> {band_score:.0f}; {stability_text}"
        )

    @staticmethod
    def _depth(depth_signal: Sequence[tuple[int, float]]) -> tuple[float, str]:
        values = [s for _, s in depth_signal]
        mean = math.fsum(values) / len(values)
        slope = _slope(values)
        # The level plus half the fitted change from the middle to the last turn, bounded:
        # answers that grow more concrete (or stay concrete) score high, a decline costs
        # at most DEPTH_TREND_MAX points (question types differ, so the trend is noisy).
        trend = max(-DEPTH_TREND_MAX, min(DEPTH_TREND_MAX, slope * (len(values) - 1) / 4))
        score = _clamp(mean + trend)
        listed = ", ".join(f"turn {t} {s:.0f}" for t, s in depth_signal)
        what = f"depth (0.75 x specificity + 0.25 x length) by turn: {listed}"
        if len(values) < 2:
            return score, f"single turn, no trend; {what}"
        direction = "rising" if slope > 2 else "falling" if slope < -2 else "steady"
        return score, (f"{what}; mean {mean:.0f}, {direction} ({slope:+.1f} per turn) -> "
                       f"{trend:+.0f}")

    @staticmethod
    def _coverage(
        turns: Sequence[TurnCase], results: Sequence[_TurnResult], rubric: Rubric | None,
        note: str | None,
    ) -> tuple[float, str]:
        if rubric is None:
            return 50.0, f"neutral 50: {note}"
        hit = list(dict.fromkeys(c for r in results for c in r.concepts))
        total = len(rubric.concepts)
        target = max(1, math.ceil(FLOW_CONCEPT_TARGET * total))
        concept_score = 100.0 * min(len(hit), target) / target
        reason = (f"{len(hit)} of the {total} {rubric.title} concepts covered "
                  f"({_quote([_concept_label(c) for c in hit], 8) or 'none'}; "
                  f"{target} = full marks)")
        if note:
            reason = f"{note}; {reason}"
        categories = [t.category for t in turns if t.category]
        if not categories:
            return concept_score, reason
        distinct = list(dict.fromkeys(categories))
        category_score = 100.0 * len(distinct) / len(categories)
        score = 0.75 * concept_score + 0.25 * category_score
        return score, (f"{reason}; {len(distinct)} distinct question categories over "
                       f"{len(categories)} turns ({_quote(distinct, 5)})")
