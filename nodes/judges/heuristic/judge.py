"""The heuristic judge: an offline, deterministic *estimate* of answer quality.

It needs no LLM and no network, only the configured sentence embedder, the bank's expected
points and the position's rubric. Per turn:

1. injection: spans addressed to the evaluator are removed (`nodes.judges.injection`); a
   flagged answer scores min(score of the cleaned text, score of the text without every
   suspect sentence) x the penalty, so it can never beat the answer without its suspect
   sentences;
2. guards (`nodes.judges.guards`): empty, non-answer, echo, term list, off-topic - each caps
   the score and is recorded in `details.flags` with its reason;
3. the turn scorer (`turn.py`) on the answer's own text: relevance, coverage of the expected
   points (semantic, per sentence), specificity, communication;
4. the wording (`wording.py`) in the interview's language.

The flow scorer (`flow.py`) reuses the per-turn results. Determinism: no randomness and no
clock in the result (only `latency_ms`); each text is embedded on its own and cached, so a
vector depends on its text alone. Limits: a proxy that rewards the form of a good answer and
its closeness to the expected points; it cannot check that what is said is true. The LLM
judge is the real judge; `details.judge.kind` says "heuristic".
"""

from __future__ import annotations

import asyncio
import math
import operator
import time
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeAlias

from nodes.judges import guards as guard_rules
from nodes.judges.details import EvaluationDetails, JudgeInfo, RubricScore
from nodes.judges.guards import CLEAR_KINDS, GuardFinding
from nodes.judges.heuristic import wording
from nodes.judges.heuristic.calibration import calibration, clamp, r1
from nodes.judges.heuristic.features import (
    detect_language,
    normalise_language,
    sentences,
    units_with_terms,
)
from nodes.judges.heuristic.turn import Measured, Scored, relevance_score, score_answer
from nodes.judges.injection import InjectionScan, scan
from nodes.judges.intents import (
    GUARD_INTENTS,
    INJECTION_INTENT,
    cue_intents,
    ordered,
    question_intent,
)
from nodes.judges.judge import FlowCase, JudgeError, TurnCase
from nodes.judges.reference import BankEntry, exact_entry, position_entries
from nodes.judges.rubrics import Rubric, UnknownPositionError, available_positions, load_rubric
from storage.embeddings import Embedder, aembed_queries

PROMPT_VERSION = "heuristic-v2"
#: Texts whose vectors a judge keeps (about 3 KB each for a 384-d model).
EMBEDDING_CACHE_SIZE = 4096

Vector: TypeAlias = "array[float]"


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    """The exactly rounded dot product (`map` rather than a generator: the same products)."""
    if len(a) != len(b):
        raise ValueError(f"vectors of {len(a)} and {len(b)} dimensions")
    return math.fsum(map(operator.mul, a, b))


@lru_cache(maxsize=64)
def rubric_for(position: str) -> tuple[Rubric | None, str | None]:
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
    union = Rubric(
        position=position, title=position, concepts=concepts, technical_terms=tuple(terms)
    )
    return union, f"position {position!r} has no rubric; measured against all rubrics"


@dataclass(frozen=True)
class Reference:
    """The expected points an answer is judged against, and where they came from."""

    points: tuple[str, ...]
    source: str  # "bank", "bank~0.95", "case", "rubric"
    entry: BankEntry | None = None


@dataclass(frozen=True)
class Inspection:
    """Everything decided before scoring: injection, guards, reference, language."""

    language: str
    scan: InjectionScan
    findings: tuple[GuardFinding, ...]
    reference: Reference

    @property
    def clear(self) -> GuardFinding | None:
        """The finding that decides the evaluation on its own, if any."""
        for finding in self.findings:
            if finding.kind in CLEAR_KINDS:
                return finding
        return None

    def flags(self) -> list[str]:
        """Guard and injection flags with their reasons."""
        return [*(f.flag for f in self.findings), *self.scan.flags()]


@dataclass(frozen=True)
class TurnResult:
    """Everything computed for one turn (used by TURN_EVAL and HOLISTIC_FLOW)."""

    details: EvaluationDetails
    scored: Scored | None
    inspection: Inspection
    answer_vector: Vector | None = field(default=None, compare=False)

    @property
    def answered(self) -> bool:
        """Whether the turn holds a genuine attempt (no clear guard)."""
        return self.scored is not None and self.inspection.clear is None


class HeuristicJudge:
    """Offline, deterministic judge built on embeddings, expected points and rules.

    Args:
        embedder: The sentence embedder (its vectors are L2-normalised).
        model_name: The embedder's model name; it selects the cosine calibration and is
            recorded in `details.judge.model`.
    """

    def __init__(self, embedder: Embedder, *, model_name: str = "all-MiniLM-L6-v2") -> None:
        self._embedder = embedder
        self._model_name = model_name
        self._info = JudgeInfo(kind="heuristic", model=model_name, prompt_version=PROMPT_VERSION)
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self._matches: OrderedDict[tuple[str, str, str], asyncio.Task[Reference]] = OrderedDict()

    @property
    def kind(self) -> str:
        """Always "heuristic"."""
        return "heuristic"

    @property
    def info(self) -> JudgeInfo:
        """What `details.judge` records."""
        return self._info

    # ------------------------------------------------------------------ embeddings

    async def _embed(self, texts: Sequence[str]) -> list[Vector]:
        """One vector per text, each embedded on its own and cached (order-independent)."""
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

    def _calibrated(self, language: str) -> bool:
        cal = calibration()
        return cal.curve_for(cal.relevance, self._model_name, language) is not None

    @staticmethod
    def _profile(entry: BankEntry) -> str:
        return " ".join([entry.text, *entry.points])

    # ------------------------------------------------------------------ inspection

    async def reference(self, case: TurnCase, language: str) -> Reference:
        """The expected points of the case's question (bank, the case's own, or none)."""
        if case.expected_points:
            return Reference(tuple(case.expected_points), "case")
        entry = exact_entry(case.position, case.question)
        if entry is not None:
            return Reference(entry.points, "bank", entry)
        key = (case.position, case.question, normalise_language(language))
        matching = self._matches.get(key)
        if matching is None:
            # Kept as the task, not its result: the turns of twenty sessions submitted at
            # once ask about the same new question together, and they share one match (one
            # embedding) instead of each embedding it (measured: 2.5 s on the first batch).
            matching = asyncio.ensure_future(self._bank_match(*key))
            self._matches[key] = matching
            if len(self._matches) > EMBEDDING_CACHE_SIZE:
                self._matches.popitem(last=False)
        try:
            # Shielded: a cancelled turn must not cancel the match the others wait for.
            return await asyncio.shield(matching)
        except Exception:
            if self._matches.get(key) is matching:
                del self._matches[key]  # a failure is not kept: the next turn tries again
            raise

    async def _bank_match(self, position: str, question: str, language: str) -> Reference:
        """The bank question closest to `question` when close enough, else the rubric.

        A pure function of its arguments (the bank is packaged), so `reference` keeps it per
        question: the turns of a batch share their questions, and the comparison with every
        bank question of the position was most of the guards' time per turn.
        """
        candidates = position_entries(position)
        if not candidates or not self._calibrated(language):
            return Reference((), "rubric")
        (q_vec,) = await self._embed([question])
        vectors = await self._embed([e.text for e in candidates])
        best, best_cos = None, -1.0
        for entry, vector in zip(candidates, vectors, strict=True):
            cosine = _dot(q_vec, vector)
            if cosine > best_cos:
                best, best_cos = entry, cosine
        if best is not None and best_cos >= calibration().bank_match_cosine:
            return Reference(best.points, f"bank~{best_cos:.3f}", best)
        return Reference((), "rubric")

    async def inspect(self, case: TurnCase) -> Inspection:
        """Injection, guards and reference of one turn (shared with the LLM judge)."""
        injection = scan(case.answer)
        language = (
            normalise_language(case.language)
            if case.language
            else detect_language(injection.cleaned)
        )
        reference = await self.reference(case, language)
        if not case.answer.strip():
            finding = GuardFinding("empty", guard_rules.cap("empty"), "no answer was given", {})
            return Inspection(language, injection, (finding,), reference)
        if injection.flagged and not injection.cleaned.strip(" .,:;-\n"):
            finding = GuardFinding(
                "injection_only",
                guard_rules.cap("injection_only"),
                "nothing is left once text addressed to the evaluator is removed",
                {},
            )
            return Inspection(language, injection, (finding,), reference)
        findings, echo = guard_rules.lexical_findings(case.question, injection.cleaned)
        if not any(f.kind in CLEAR_KINDS for f in findings):
            off = await self._off_topic(
                case, echo.own_text or injection.cleaned, language, reference
            )
            if off is not None:
                findings.append(off)
        return Inspection(language, injection, tuple(findings), reference)

    async def _off_topic(
        self, case: TurnCase, text: str, language: str, reference: Reference
    ) -> GuardFinding | None:
        """The off-topic finding when the answer fits another bank question far better."""
        own_entry = reference.entry
        # Only a question with expected points (a bank question, or one matched to it) can be
        # compared like with like with its neighbours (question and points on both sides).
        # A short free-form question against richer neighbours made correct answers look
        # off-topic (a capped score of 20): without points, relevance alone judges the answer.
        if own_entry is None or not reference.points:
            return None
        others = [e for e in position_entries(case.position, language) if e.text != own_entry.text]
        if not others or not text.strip():
            return None
        own_profile = " ".join([case.question, *reference.points])
        profile = self._profile

        thresholds = guard_rules.threshold
        if self._calibrated(language):
            vectors = await self._embed(
                [text, own_profile, case.question, *(profile(e) for e in others)]
            )
            a_vec, own_vec, q_vec, other_vecs = vectors[0], vectors[1], vectors[2], vectors[3:]
            own = _dot(a_vec, own_vec)
            # a bank question that paraphrases the asked one is not "another question"
            paraphrase = self._model_threshold("off_topic_paraphrase_cosine", 0.9)
            question_vecs = await self._embed([e.text for e in others])
            sims = [
                -1.0 if _dot(q_vec, qv) >= paraphrase else _dot(a_vec, v)
                for v, qv in zip(other_vecs, question_vecs, strict=True)
            ]
            best_index = max(range(len(sims)), key=lambda i: (sims[i], -i))
            decided = sims[best_index] - own > self._margin()
            measured = Measured(_dot(q_vec, a_vec), None)
            kind = "cosine"
        else:
            a_units = units_with_terms(text)

            def lexical(profile: str) -> float:
                units = units_with_terms(profile)
                return len(units & a_units) / math.sqrt(max(1, len(units)) * max(1, len(a_units)))

            own = lexical(own_profile)
            q_units = units_with_terms(case.question)

            def paraphrases(entry: BankEntry) -> bool:
                units = units_with_terms(entry.text)
                return len(units & q_units) / max(1, min(len(units), len(q_units))) >= thresholds(
                    "off_topic_paraphrase_lexical"
                )

            sims = [-1.0 if paraphrases(e) else lexical(profile(e)) for e in others]
            best_index = max(range(len(sims)), key=lambda i: (sims[i], -i))
            best = sims[best_index]
            decided = best >= thresholds(
                "off_topic_lexical_ratio"
            ) * own and best - own >= thresholds("off_topic_lexical_gap")
            measured = Measured(None, None)
            kind = "lexical"
        if not decided:
            return None
        # an answer that clearly addresses its own question is not off-topic, however close
        # it also is to a neighbour
        relevance, _, _ = relevance_score(
            case.question, text, measured, self._model_name, language, calibration()
        )
        if relevance >= thresholds("off_topic_own_relevance_below"):
            return None
        return guard_rules.off_topic_finding(others[best_index].text, own, sims[best_index], kind)

    def _margin(self) -> float:
        return self._model_threshold("off_topic_margin_embedding", 0.1)

    def _model_threshold(self, name: str, default: float) -> float:
        """A per-model guard threshold (`lexicons/guards.json`), by model-name substring."""
        from nodes.judges.lexicons import load

        values: dict[str, float] = load("guards")["thresholds"][name]
        key = self._model_name.lower()
        for model, value in values.items():
            if model in key:
                return float(value)
        return default

    # ------------------------------------------------------------------ scoring

    async def _measure(
        self, question: str, text: str, points: Sequence[str], language: str
    ) -> tuple[Measured, Vector | None]:
        if not text.strip():
            return Measured(None, None), None
        if not self._calibrated(language):
            (a_vec,) = await self._embed([text])
            return Measured(None, None), a_vec
        parts = sentences(text) or [text]
        vectors = await self._embed([question, text, *points, *parts])
        q_vec, a_vec = vectors[0], vectors[1]
        p_vecs = vectors[2 : 2 + len(points)]
        s_vecs = vectors[2 + len(points) :]
        point_cos = tuple(max(_dot(p, s) for s in [a_vec, *s_vecs]) for p in p_vecs)
        return Measured(_dot(q_vec, a_vec), point_cos if points else None), a_vec

    async def _score_text(
        self,
        case: TurnCase,
        text: str,
        inspection: Inspection,
    ) -> tuple[Scored, Vector | None]:
        echo = guard_rules.split_echo(case.question, text)
        own = echo.own_text  # restated sentences earn nothing (may leave nothing at all)
        rubric, note = rubric_for(case.position)
        measured, vector = await self._measure(
            case.question, own, inspection.reference.points, inspection.language
        )
        scored = score_answer(
            case.question,
            own,
            points=inspection.reference.points,
            rubric=rubric,
            rubric_note=note,
            measured=measured,
            model=self._model_name,
            language=inspection.language,
        )
        return scored, vector

    async def judge_turn(self, case: TurnCase) -> TurnResult:
        """The full per-turn evaluation (inspection, scoring, wording)."""
        inspection = await self.inspect(case)
        clear = inspection.clear
        scored: Scored | None = None
        vector: Vector | None = None
        if clear is None or clear.kind not in {"empty", "injection_only"}:
            scored, vector = await self._score_text(case, inspection.scan.cleaned, inspection)
        score = scored.score if scored is not None else 0.0
        if inspection.scan.flagged and scored is not None:
            # The guarantee: never above the answer without its suspect sentences.
            bound_text = inspection.scan.without_sentences
            bound = 0.0
            if bound_text.strip() and bound_text != inspection.scan.cleaned:
                bound = (await self._score_text(case, bound_text, inspection))[0].score
                for finding in guard_rules.lexical_findings(case.question, bound_text)[0]:
                    bound = min(bound, finding.cap)
            elif bound_text.strip():
                bound = score
            score = min(score, bound)
        for finding in inspection.findings:
            score = min(score, finding.cap)
        if inspection.scan.flagged:
            score *= calibration().injection_penalty
        score = r1(clamp(score))
        details = self._turn_details(case, inspection, scored, score)
        return TurnResult(
            details=details, scored=scored, inspection=inspection, answer_vector=vector
        )

    @staticmethod
    def intents(
        case: TurnCase,
        inspection: Inspection,
        scored: Scored | None,
    ) -> dict[str, Any]:
        """`intent` (the question's category) and `intent_types` (what the answer did)."""
        entry = inspection.reference.entry
        types = [GUARD_INTENTS[f.kind] for f in inspection.findings if f.kind in GUARD_INTENTS]
        if inspection.scan.flagged:
            types.append(INJECTION_INTENT)
        if scored is not None and inspection.clear is None:
            types += cue_intents(inspection.scan.cleaned)
            if scored.markers:
                types.append("gave_example")
            if scored.figures:
                types.append("cited_figures")
            if scored.terms:
                types.append("used_technical_terms")
            if scored.words >= calibration().ideal_words[0] and scored.communication >= 60:
                types.append("explained")  # a developed answer in real sentences
        return {
            "intent": question_intent(case.category, entry.category if entry else None),
            "intent_types": ordered(types),
        }

    def _turn_details(
        self, case: TurnCase, inspection: Inspection, scored: Scored | None, score: float
    ) -> EvaluationDetails:
        lang = inspection.language
        intents = self.intents(case, inspection, scored)
        flags = inspection.flags()
        strengths: list[str] = []
        improvements: list[str] = []
        clear = inspection.clear
        if scored is None:
            reason = wording.text(lang, f"guard.{clear.kind if clear else 'empty'}", cap=0)
            rubrics = {
                name: RubricScore(score=0.0, reason=reason)
                for name in ("relevance", "coverage", "specificity", "communication")
            }
            improvements.append(wording.text(lang, "improvements.guarded"))
            if inspection.scan.flagged:
                improvements.append(wording.text(lang, "improvements.injection"))
            return EvaluationDetails(
                score=score,
                analysis=reason,
                rubrics=rubrics,
                feedback=wording.text(
                    lang,
                    "feedback",
                    band_cap=wording.sentence(wording.band_name(lang, score)),
                    score=f"{score:.0f}",
                    lead=wording.sentence(improvements[0]),
                ),
                improvements=improvements,
                flags=flags,
                judge=self._info,
                **intents,
            )
        guard_text = " ".join(
            wording.text(
                lang,
                f"guard.{f.kind}",
                cap=f"{f.cap:.0f}",
                items=f.detail.get("items", ""),
                other=f.detail.get("other", ""),
            )
            for f in inspection.findings
        )
        analysis = (guard_text + " " if guard_text else "") + wording.text(
            lang,
            "turn_analysis",
            band=wording.band_name(lang, score),
            score=f"{score:.0f}",
            relevance=f"{scored.relevance:.0f}",
            coverage=f"{scored.coverage:.0f}",
            specificity=f"{scored.specificity:.0f}",
            communication=f"{scored.communication:.0f}",
        )
        points = inspection.reference.points
        if points:
            listed = (
                (": " if lang == "en" else " (")
                + wording.join_items(lang, list(scored.covered_points))
                + ("" if lang == "en" else ")")
                if scored.covered_points
                else ""
            )
            analysis += wording.text(
                lang,
                "turn_points",
                covered=len(scored.covered_points),
                total=len(points),
                listed=listed,
            )
            if scored.missing_points:
                analysis += wording.text(
                    lang,
                    "turn_points_missing",
                    missing=wording.join_items(lang, list(scored.missing_points)),
                )
        else:
            rubric, _ = rubric_for(case.position)
            analysis += wording.text(
                lang, "turn_rubric_fallback", title=rubric.title if rubric else case.position
            )
        if scored.gate < 0.995:
            analysis += wording.text(lang, "turn_gate", gate=f"x{scored.gate:.2f}")
        for finding in inspection.findings:
            improvements.append(
                wording.text(lang, f"improvements.{finding.kind}")
                if finding.kind in {"echo", "term_list", "off_topic"}
                else wording.text(lang, "improvements.guarded")
            )
        if inspection.scan.flagged:
            analysis += wording.text(lang, "turn_injection", codes=", ".join(inspection.scan.codes))
        if scored.relevance >= 70 and not inspection.findings:
            strengths.append(wording.text(lang, "strengths.relevance"))
        elif scored.relevance < calibration().gate_full_relevance:
            improvements.append(wording.text(lang, "improvements.relevance"))
        if inspection.findings:
            pass
        elif points and len(scored.covered_points) >= max(2, math.ceil(len(points) / 2)):
            strengths.append(
                wording.text(
                    lang,
                    "strengths.coverage",
                    points=wording.join_items(lang, list(scored.covered_points), 2),
                )
            )
        elif points and scored.missing_points:
            improvements.append(
                wording.text(
                    lang,
                    "improvements.coverage",
                    missing=wording.join_items(lang, list(scored.missing_points), 2),
                )
            )
        if scored.markers and scored.figures and scored.specificity >= 60:
            strengths.append(wording.text(lang, "strengths.examples"))
        elif scored.terms and scored.specificity >= 60:
            strengths.append(
                wording.text(lang, "strengths.terms", terms=", ".join(scored.terms[:3]))
            )
        if scored.specificity < 40:
            improvements.append(
                wording.text(
                    lang,
                    "improvements.examples" if not scored.figures else "improvements.situation",
                )
            )
        if scored.filler:
            improvements.append(
                wording.text(lang, "improvements.filler", filler=", ".join(scored.filler[:3]))
            )
        low, high = calibration().ideal_words
        if scored.words < low:
            improvements.append(
                wording.text(
                    lang,
                    "improvements.short",
                    words=f"{scored.words:.0f}",
                    low=f"{low:.0f}",
                    high=f"{high:.0f}",
                )
            )
        elif scored.words > high * 1.5:
            improvements.append(wording.text(lang, "improvements.long"))
        elif scored.communication >= 85 and scored.relevance >= 45:
            strengths.append(wording.text(lang, "strengths.communication"))
        if inspection.scan.flagged:
            improvements.append(wording.text(lang, "improvements.injection"))
        improvements = list(dict.fromkeys(improvements))
        lead = (
            improvements[0]
            if improvements
            else (strengths[0] if strengths else wording.text(lang, "improvements.examples"))
        )
        feedback = wording.text(
            lang,
            "feedback",
            band_cap=wording.sentence(wording.band_name(lang, score)),
            score=f"{score:.0f}",
            lead=wording.sentence(lead),
        )
        return EvaluationDetails(
            score=score,
            analysis=analysis,
            rubrics=scored.rubrics(),
            feedback=feedback,
            strengths=strengths,
            improvements=improvements,
            keywords=list(scored.terms[:10]),
            flags=flags,
            judge=self._info,
            **intents,
        )

    # ------------------------------------------------------------------ the protocol

    async def evaluate_turn(self, case: TurnCase) -> EvaluationDetails:
        """TURN_EVAL details for one answered turn.

        Args:
            case: The question and answer to evaluate.

        Returns:
            Details with the rubric entries relevance, coverage, specificity, communication.

        Raises:
            JudgeError: The embedder failed.
        """
        started = time.perf_counter()
        result = await self.judge_turn(case)
        return result.details.model_copy(
            update={"latency_ms": round((time.perf_counter() - started) * 1000, 1)}
        )

    async def evaluate_flow(self, case: FlowCase) -> EvaluationDetails:
        """HOLISTIC_FLOW details for the whole conversation.

        Args:
            case: All turns of the interview (answers may be empty).

        Returns:
            Details with the rubric entries consistency, depth_progression, coverage and
            answer_quality.

        Raises:
            JudgeError: The conversation has no turns, or the embedder failed.
        """
        from nodes.judges.heuristic.flow import flow_details

        started = time.perf_counter()
        if not case.turns:
            raise JudgeError("cannot evaluate the flow of an empty conversation")
        turns = sorted(case.turns, key=lambda t: t.turn)
        results = [await self.judge_turn(t) for t in turns]
        details = flow_details(case, turns, results, self._info)
        return details.model_copy(
            update={"latency_ms": round((time.perf_counter() - started) * 1000, 1)}
        )
