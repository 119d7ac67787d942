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
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from itertools import combinations
from typing import TypedDict, Unpack

from tqdm import tqdm

from api.calibration.defaults import DEFAULT_PAIR_GAP, DEFAULT_RESAMPLES, DEFAULT_SEED
from api.calibration.labels import Label
from api.calibration.metrics import Agreement, agreement
from api.settings import Settings
from nodes.judges.factory import make_judge, use_llm
from nodes.judges.judge import FlowCase, Judge, JudgeError, TurnCase
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
    cases: Mapping[str, TurnCase | FlowCase],
    *,
    concurrency: int = 4,
    progress: bool = False,
) -> JudgeRun:
    """Score every case (keyed by its id) with `judge`, at most `concurrency` at a time.

    A `TurnCase` goes to `evaluate_turn`, a `FlowCase` to `evaluate_flow`: the calls node 4
    and node 6a make.
    """
    gate = asyncio.Semaphore(concurrency)
    scores: dict[str, float] = {}
    failures: dict[str, str] = {}
    info: dict[str, str] = {}
    bar = tqdm(total=len(cases), desc=f"{name} judge", unit="item", disable=not progress)

    async def one(key: str, case: TurnCase | FlowCase) -> None:
        async with gate:
            try:
                if isinstance(case, FlowCase):
                    details = await judge.evaluate_flow(case)
                else:
                    details = await judge.evaluate_turn(case)
            except JudgeError as exc:
                failures[key] = str(exc)
            else:
                scores[key] = details.score
                info.update(details.judge.model_dump(mode="json"))
            bar.update()

    try:
        await asyncio.gather(*(one(key, case) for key, case in cases.items()))
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


def compare_runs(
    first: JudgeRun,
    second: JudgeRun,
    slices: Mapping[str, Sequence[str]],
    *,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
) -> Comparison:
    """Agreement of `second` with `first` per slice (item ids), on the items both scored."""
    per_slice = {}
    for key, members in slices.items():
        both = [i for i in members if i in first.scores and i in second.scores]
        per_slice[key] = agreement(
            [first.scores[i] for i in both],
            [second.scores[i] for i in both],
            seed=seed,
            resamples=resamples,
        )
    return Comparison(first=first.name, second=second.name, agreement=per_slice)


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
    comparisons = [
        compare_runs(
            first,
            second,
            {key: [label.id for label in members] for key, members in slices.items()},
            seed=seed,
            resamples=resamples,
        )
        for first, second in combinations(runs, 2)
    ]
    return Calibration(
        source=source,
        labels=list(labels),
        judges=reports,
        comparisons=comparisons,
        seed=seed,
        resamples=resamples,
        pair_gap=pair_gap,
    )


class CalibrationOptions(TypedDict, total=False):
    """Keyword options of `calibrate` (and of `calibrate_with_settings`, which passes them on)."""

    concurrency: int
    progress: bool
    seed: int
    resamples: int
    pair_gap: float


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
    cases: dict[str, TurnCase | FlowCase] = {label.id: case_of(label) for label in labels}
    runs = [
        await run_judge(name, judge, cases, concurrency=concurrency, progress=progress)
        for name, judge in judges.items()
    ]
    return summarise(source, labels, runs, seed=seed, resamples=resamples, pair_gap=pair_gap)


@asynccontextmanager
async def judges_from_settings(
    names: Iterable[JudgeName], settings: Settings
) -> AsyncIterator[dict[str, Judge]]:
    """The requested judges, built by the graph's factory (duplicates collapse), then closed.

    Raises `JudgeConfigurationError` for `llm` without an endpoint configured, before the
    embedding model is loaded.
    """
    wanted = list(dict.fromkeys(names))
    kinds = {JudgeName.HEURISTIC: JudgeKind.HEURISTIC, JudgeName.LLM: JudgeKind.LLM}
    configured = [settings.model_copy(update={"judge": kinds[name]}) for name in wanted]
    for one in configured:
        use_llm(one)  # the configuration error first, not after a model load
    embedder = await asyncio.to_thread(load_embedder, settings) if wanted else None
    judges: dict[str, Judge] = {}
    try:
        for name, one in zip(wanted, configured, strict=True):
            assert embedder is not None
            judges[str(name)] = make_judge(one, embedder, settings.embedding_model_name)
        yield judges
    finally:
        for judge in judges.values():
            close = getattr(judge, "aclose", None)  # the LLM judge's HTTP clients
            if close is not None:
                await close()


async def calibrate_with_settings(
    source: str,
    labels: Sequence[Label],
    names: Iterable[JudgeName],
    settings: Settings,
    **options: Unpack[CalibrationOptions],
) -> Calibration:
    """`calibrate` with the judges the settings configure (what the CLI and notebook run)."""
    async with judges_from_settings(names, settings) as judges:
        return await calibrate(source, labels, judges, **options)
