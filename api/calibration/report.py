"""The calibration report: Markdown for people, JSON for machines (and notebook 03).

Both hold the same figures: per judge and per slice (all labels, then each language) the
statistics of `metrics` with their bootstrap 95% intervals, the band confusion matrix, the
judge-vs-judge agreement, and in the JSON every item's human and judge scores.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Any

from api.calibration.bands import BAND_NAMES, band_range
from api.calibration.metrics import CONFIDENCE, Agreement, Estimate
from api.calibration.runner import ALL, Calibration, Comparison

#: Column titles of the statistics, in report order.
TITLES = {
    "spearman": "Spearman ρ",
    "kendall": "Kendall τ",
    "qwk": "QWK (5 bands)",
    "mae": "MAE",
    "bias": "bias",
    "pair_accuracy": "pair accuracy",
}


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """One judge-vs-judge comparison as JSON: the two names and the agreement per slice."""
    return {
        "first": comparison.first,
        "second": comparison.second,
        "agreement": {key: asdict(value) for key, value in comparison.agreement.items()},
    }


def to_json(calibration: Calibration) -> dict[str, Any]:
    """The report as plain JSON data."""
    labels = calibration.labels
    return {
        "source": calibration.source,
        "labels": {
            "n": len(labels),
            "by_language": dict(sorted(Counter(label.language for label in labels).items())),
            "by_position": dict(sorted(Counter(label.position for label in labels).items())),
            "by_band": {name: sum(label.band == name for label in labels) for name in BAND_NAMES},
            "raters": sorted({label.rater for label in labels if label.rater}),
        },
        "bands": [
            dict(zip(("name", "low", "high"), (name, *band_range(name)), strict=True))
            for name in BAND_NAMES
        ],
        "settings": {
            "seed": calibration.seed,
            "resamples": calibration.resamples,
            "pair_gap": calibration.pair_gap,
            "confidence": CONFIDENCE,
        },
        "judges": [
            {
                "name": report.run.name,
                "judge": report.run.judge,
                "evaluated": len(report.run.scores),
                "failures": report.run.failures,
                "agreement": {key: asdict(value) for key, value in report.agreement.items()},
            }
            for report in calibration.judges
        ],
        "comparisons": [comparison_json(c) for c in calibration.comparisons],
        "items": [
            {
                "id": label.id,
                "position": label.position,
                "language": label.language,
                "band": label.band,
                "human": label.score,
                "scores": {r.run.name: r.run.scores.get(label.id) for r in calibration.judges},
            }
            for label in labels
        ],
    }


def agreement_section(
    title: str,
    intro: str,
    per_slice: dict[str, Agreement],
    rows: str,
    columns: str,
    *,
    with_pairs: bool = False,
    confusion_of: str = "all",
) -> list[str]:
    """A `## title` section: the statistics per slice, then one slice's band confusion."""
    lines = ["", f"## {title}", "", intro, ""]
    lines += statistics_table(per_slice, with_pairs=with_pairs)
    lines += ["", f"Band confusion (slice `{confusion_of}`):", ""]
    lines += confusion_table(per_slice[confusion_of], rows, columns)
    return lines


def _cell(estimate: Estimate | None, digits: int) -> str:
    if estimate is None or estimate.value is None:
        return "n/a"
    text = f"{estimate.value:.{digits}f}"
    if estimate.low is not None and estimate.high is not None:
        text += f" [{estimate.low:.{digits}f}, {estimate.high:.{digits}f}]"
    return text


def statistics_table(per_slice: dict[str, Agreement], with_pairs: bool) -> list[str]:
    """One Markdown row per slice: n, every statistic with its interval (and pairs)."""
    names = [n for n in TITLES if with_pairs or n != "pair_accuracy"]
    head = ["slice", "n", *(TITLES[n] for n in names)]
    if with_pairs:
        head.append("pairs")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, agreement in per_slice.items():
        cells = [key, str(agreement.n)]
        cells += [
            _cell(agreement.statistics.get(n), 1 if n in {"mae", "bias"} else 2) for n in names
        ]
        if with_pairs:
            cells.append(str(agreement.pairs))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def confusion_table(agreement: Agreement, rows: str, columns: str) -> list[str]:
    """The band confusion matrix as a Markdown table (rows = reference bands)."""
    lines = [
        f"| {rows} \\ {columns} | " + " | ".join(BAND_NAMES) + " |",
        "|" + "---|" * (len(BAND_NAMES) + 1),
    ]
    for name, row in zip(BAND_NAMES, agreement.confusion, strict=True):
        lines.append(f"| {name} | " + " | ".join(str(c) for c in row) + " |")
    return lines


def to_markdown(calibration: Calibration) -> str:
    """The report as Markdown."""
    data = to_json(calibration)
    labels = data["labels"]
    languages = ", ".join(f"{k}: {v}" for k, v in labels["by_language"].items())
    lines = [
        "# Judge calibration against human labels",
        "",
        f"Labels: `{calibration.source}`, {labels['n']} answers ({languages}); raters: "
        f"{', '.join(labels['raters']) or 'not recorded'}.",
        f"Intervals: {CONFIDENCE:.0%} percentile bootstrap, {calibration.resamples} "
        f"resamples, seed {calibration.seed}. Pairs: answers to the same question whose "
        f"human scores differ by more than {calibration.pair_gap:g} points (a judge tie "
        "counts one half). Bias = judge minus human, in points. Bands: "
        + ", ".join(f"{b['name']} {b['low']:g}-{b['high']:g}" for b in data["bands"])
        + ".",
    ]
    for report in calibration.judges:
        run = report.run
        judge = ", ".join(f"{k} {v}" for k, v in sorted(run.judge.items())) or "no evaluation"
        lines += agreement_section(
            f"Judge `{run.name}` vs human",
            f"{judge}; scored {len(run.scores)} of {labels['n']} answers.",
            report.agreement,
            "human",
            run.name,
            with_pairs=True,
            confusion_of=ALL,
        )
        if run.failures:
            lines += ["", f"Failed on {len(run.failures)} answers (left out above):", ""]
            lines += [f"- `{key}`: {reason}" for key, reason in sorted(run.failures.items())]
    for comparison in calibration.comparisons:
        lines += agreement_section(
            f"Judge `{comparison.second}` vs judge `{comparison.first}`",
            f"`{comparison.first}` is the reference; answers both judges scored.",
            comparison.agreement,
            comparison.first,
            comparison.second,
            confusion_of=ALL,
        )
    return "\n".join(lines) + "\n"
