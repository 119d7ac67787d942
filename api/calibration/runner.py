"""Scoring the labels with the judges and assembling the agreement statistics.

The judges are the graph's own: built by `nodes.judges.factory.make_judge` from the settings
(with `JUDGE` forced to the requested kind) and called through the `Judge` protocol, one
`TurnCase` per label, exactly as node 4 (evaluate_turn) calls them. A label the judge fails
on (`JudgeError` after its retries) is recorded with its reason and left out of that judge's
statistics; the report says how many. The LLM judge exists only when an endpoint is
configured (`JudgeConfigurationError` otherwise).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import combinations

from tqdm import tqdm

from api.calibration.defaults import DEFAULT_PAIR_GAP, DEFAULT_RESAMPLES, DEFAULT_SEED
from api.calibration.labels import Label
from api.calibration.metrics import Agreement, agreement
from api.settings import Settings
from nodes.judges.factory import make_judge
from nodes.judges.judge import Judge, JudgeError, TurnCase
from nodes.judges.settings import JudgeKind
from storage.embeddings import load_embedder

#: The slice of every label, beside one slice per language.
ALL = "all"


class JudgeName(StrEnum):
    """Judges `turnjudge calibrate` can evaluate."""

    HEURISTIC = "heuristic"
    LLM = "llm"


@dataclass(frozen=True)
class JudgeRun:
    """One judge's scores on the labels."""

    name: str
    judge: dict[str, str]
    """`details.judge` of its evaluations (kind, model, prompt_version)."""
    scores: dict[str, float]
    failures: dict[str, str]


@dataclass(frozen=True)
class JudgeReport:
    """A judge's scores and its agreement with the human labels, per slice."""

    run: JudgeRun
    agreement: dict[str, Agreement]


@dataclass(frozen=True)
class Comparison:
    """Agreement of `second` with `first` (as reference), on labels both scored."""

    first: str
    second: str
    agreement: dict[str, Agreement]


@dataclass(frozen=True)
class Calibration:
    """Everything `turnjudge calibrate` reports."""

    source: str
    labels: list[Label]
    judges: list[JudgeReport]
    comparisons: list[Comparison]
    seed: int
    resamples: int
    pair_gap: float


def case_of(label: Label) -> TurnCase:
    """The TURN_EVAL case node 4 would build for this answer."""
    return TurnCase(
        position=label.position,
        language=label.language,
        turn=1,
        question=label.question,
        answer=label.answer,
    )


async def run_judge(
    name: str,
    judge: Judge,
    labels: Sequence[Label],
    *,
    concurrency: int = 4,
    progress: bool = False,
) -> JudgeRun:
    """Score every label with `judge`, at most `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)
    scores: dict[str, float] = {}
    failures: dict[str, str] = {}
    info: dict[str, str] = {}
    bar = tqdm(total=len(labels), desc=f"{name} judge", unit="answer", disable=not progress)

    async def one(label: Label) -> None:
        async with gate:
            try:
                details = await judge.evaluate_turn(case_of(label))
            except JudgeError as exc:
                failures[label.id] = str(exc)
            else:
                scores[label.id] = details.score
                info.update(details.judge.model_dump(mode="json"))
            bar.update()

    try:
        await asyncio.gather(*(one(label) for label in labels))
    finally:
        bar.close()
    return JudgeRun(name=name, judge=info, scores=scores, failures=failures)


def _group(label: Label) -> str:
    """Answers to the same question (same position and language) form pairs."""
    return "\x1f".join((label.position, label.language, label.question))


def _slices(labels: Sequence[Label]) -> dict[str, list[Label]]:
    slices = {ALL: list(labels)}
    for language in sorted({label.language for label in labels}):
        slices[language] = [label for label in labels if label.language == language]
    return slices


def summarise(
    source: str,
    labels: Sequence[Label],
    runs: Sequence[JudgeRun],
    *,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
    pair_gap: float = DEFAULT_PAIR_GAP,
) -> Calibration:
    """Agreement of every run with the labels, and of every two runs with each other."""
    slices = _slices(labels)
    reports = []
    for run in runs:
        per_slice = {}
        for key, members in slices.items():
            scored = [label for label in members if label.id in run.scores]
            per_slice[key] = agreement(
                [label.score for label in scored],
                [run.scores[label.id] for label in scored],
                groups=[_group(label) for label in scored],
                seed=seed,
                resamples=resamples,
                min_gap=pair_gap,
            )
        reports.append(JudgeReport(run=run, agreement=per_slice))
    comparisons = []
    for first, second in combinations(runs, 2):
        per_slice = {}
        for key, members in slices.items():
            both = [
                label.id
                for label in members
                if label.id in first.scores and label.id in second.scores
            ]
            per_slice[key] = agreement(
                [first.scores[i] for i in both],
                [second.scores[i] for i in both],
                seed=seed,
                resamples=resamples,
            )
        comparisons.append(Comparison(first=first.name, second=second.name, agreement=per_slice))
    return Calibration(
        source=source,
        labels=list(labels),
        judges=reports,
        comparisons=comparisons,
        seed=seed,
        resamples=resamples,
        pair_gap=pair_gap,
    )


async def calibrate(
    source: str,
    labels: Sequence[Label],
    judges: Mapping[str, Judge],
    *,
    concurrency: int = 4,
    progress: bool = False,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
    pair_gap: float = DEFAULT_PAIR_GAP,
) -> Calibration:
    """Score the labels with each judge in turn, then every statistic."""
    runs = [
        await run_judge(name, judge, labels, concurrency=concurrency, progress=progress)
        for name, judge in judges.items()
    ]
    return summarise(source, labels, runs, seed=seed, resamples=resamples, pair_gap=pair_gap)


def open_judges(names: Iterable[JudgeName], settings: Settings) -> dict[str, Judge]:
    """The requested judges, built by the graph's factory (duplicates collapse)."""
    wanted = list(dict.fromkeys(names))
    embedder = load_embedder(settings)
    kinds = {JudgeName.HEURISTIC: JudgeKind.HEURISTIC, JudgeName.LLM: JudgeKind.LLM}
    return {
        str(name): make_judge(
            settings.model_copy(update={"judge": kinds[name]}),
            embedder,
            settings.embedding_model_name,
        )
        for name in wanted
    }


async def close_judges(judges: Mapping[str, Judge]) -> None:
    """Release what a judge holds (the LLM judge's HTTP client); the protocol has no close."""
    for judge in judges.values():
        close = getattr(judge, "aclose", None)
        if close is not None:
            await close()


async def calibrate_with_settings(
    source: str,
    labels: Sequence[Label],
    names: Iterable[JudgeName],
    settings: Settings,
    *,
    concurrency: int = 4,
    progress: bool = False,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
    pair_gap: float = DEFAULT_PAIR_GAP,
) -> Calibration:
    """`calibrate` with the judges the settings configure (what the CLI and notebook run)."""
    judges = await asyncio.to_thread(open_judges, names, settings)
    try:
        return await calibrate(
            source,
            labels,
            judges,
            concurrency=concurrency,
            progress=progress,
            seed=seed,
            resamples=resamples,
            pair_gap=pair_gap,
        )
    finally:
        await close_judges(judges)
