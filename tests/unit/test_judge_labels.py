"""The labelled set, the injection sweep and determinism, on the real packaged embedder.

The held-out third of `tests/data/judge_labels.json` was not used to tune anything; its
numbers are asserted separately from the tuning split's (benchmarks/bench_judge.py reports
both, for both embedding backends).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.bench_judge import (
    LabelReport,
    benign_flagged,
    evaluate_labels,
    injection_sweep,
    load_data,
    make_judge,
)
from nodes.judges.heuristic.judge import HeuristicJudge

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def judge() -> HeuristicJudge:
    return make_judge("minilm")


@pytest.fixture(scope="module")
async def report(judge: HeuristicJudge) -> LabelReport:
    return await evaluate_labels(judge)


def test_labelled_set_shape() -> None:
    data = load_data("judge_labels.json")
    pairs, adversarial = data["pairs"], data["adversarial"]
    assert len(pairs) >= 60
    assert {p["language"] for p in pairs} == {"en", "ko"}
    assert len({p["position"] for p in pairs}) == 5
    assert len(adversarial) >= 40
    by_category = Counter((a["category"], a["language"]) for a in adversarial)
    for category in ("echo", "non_answer", "term_list", "off_topic"):
        assert by_category[(category, "en")] >= 2 and by_category[(category, "ko")] >= 2
    for items in (pairs, adversarial):
        held_out = [i for i in items if i["split"] == "heldout"]
        assert len(held_out) >= len(items) // 4
    assert len({p["id"] for p in pairs} | {a["id"] for a in adversarial}) == (
        len(pairs) + len(adversarial)
    )


def test_held_out_pairs_are_ordered(report: LabelReport) -> None:
    held_out = report.pairs["heldout"]
    assert LabelReport.rate(held_out) >= 0.95, [
        r for r in report.pair_rows if r["split"] == "heldout" and r["better"] <= r["worse"]
    ]


def test_tuning_pairs_are_ordered(report: LabelReport) -> None:
    assert LabelReport.rate(report.pairs["tuning"]) >= 0.95


def test_adversarial_answers_stay_in_band(report: LabelReport) -> None:
    for split in ("heldout", "tuning"):
        misses = [
            r
            for r in report.band_rows
            if r["split"] == split and not r["band"][0] <= r["score"] <= r["band"][1]
        ]
        assert LabelReport.rate(report.bands[split]) >= 0.90, misses


async def test_injection_sweep_never_raises_a_score(judge: HeuristicJudge) -> None:
    sweep = await injection_sweep(judge, pair_limit=6)
    assert sweep.plantings >= 6 * 24 * 3
    assert sweep.increases == []
    assert sweep.flagged / sweep.plantings >= 0.95


def test_benign_answers_are_not_flagged() -> None:
    assert len(load_data("benign_answers.json")["answers"]) >= 20
    assert len(benign_flagged()) <= 1


_SCRIPT = """
import asyncio, json, sys
from benchmarks.bench_judge import case, load_data, make_judge
from nodes.judges.judge import FlowCase

async def main():
    judge = make_judge("minilm")
    data = load_data("judge_labels.json")
    items = [*data["pairs"][:3], *data["adversarial"][::10]]
    out = []
    for item in items:
        details = await judge.evaluate_turn(case(item, item.get("better", item.get("answer"))))
        out.append(details.to_json())
    flow = await judge.evaluate_flow(FlowCase(position="backend", language="en", turns=tuple(
        case(p, p["better"]) for p in data["pairs"][:3])))
    out.append(flow.to_json())
    for d in out:
        d.pop("latency_ms", None)
    print(json.dumps(out, ensure_ascii=False, sort_keys=True))

asyncio.run(main())
"""


def test_details_are_identical_in_a_fresh_process() -> None:
    runs = [
        subprocess.run(
            [sys.executable, "-c", _SCRIPT],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
        for _ in range(2)
    ]
    assert json.loads(runs[0]) == json.loads(runs[1])
