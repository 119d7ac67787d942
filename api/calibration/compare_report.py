"""The `turnjudge compare` report: Markdown for people, JSON for machines.

Both hold the same figures: every item (turn or flow) with each judge's score and, per pair
of judges, the difference (second minus first); then per pair the statistics of `metrics`
per slice with bootstrap 95% intervals and the band confusion, and each judge's failures.
The statistics tables are `report`'s, so calibration and comparison read the same way.
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Any

from api.calibration.compare import FLOWS, TURNS, SessionComparison, item_key
from api.calibration.metrics import CONFIDENCE
from api.calibration.report import agreement_section, comparison_json


def _items(comparison: SessionComparison) -> list[dict[str, Any]]:
    runs = comparison.runs
    items = []
    for session in comparison.sessions:
        for turn in (*(t.turn for t in session.turns), None) if session.turns else ():
            key = item_key(session.id, turn)
            scores = {run.name: run.scores.get(key) for run in runs}
            differences = {
                f"{second.name}-{first.name}": (
                    round(b - a, 1)
                    if (a := scores[first.name]) is not None
                    and (b := scores[second.name]) is not None
                    else None
                )
                for first, second in combinations(runs, 2)
            }
            items.append(
                {
                    "session_id": str(session.id),
                    "turn": turn,
                    "kind": "flow" if turn is None else "turn",
                    "position": session.position,
                    "language": session.language,
                    "scores": scores,
                    "differences": differences,
                }
            )
    return items


def to_json(comparison: SessionComparison) -> dict[str, Any]:
    """The report as plain JSON data."""
    sessions = [s for s in comparison.sessions if s.turns]
    return {
        "sessions": {
            "n": len(sessions),
            "turns": sum(len(s.turns) for s in sessions),
            "without_answers": [str(s.id) for s in comparison.sessions if not s.turns],
            "by_language": dict(sorted(Counter(s.language for s in sessions).items())),
        },
        "settings": {
            "seed": comparison.seed,
            "resamples": comparison.resamples,
            "confidence": CONFIDENCE,
        },
        "judges": [
            {
                "name": run.name,
                "judge": run.judge,
                "evaluated": len(run.scores),
                "failures": run.failures,
            }
            for run in comparison.runs
        ],
        "comparisons": [comparison_json(c) for c in comparison.comparisons],
        "items": _items(comparison),
    }


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def _difference(value: float | None) -> str:
    return "–" if value is None else f"{value:+g}"


def to_markdown(comparison: SessionComparison) -> str:
    """The report as Markdown."""
    data = to_json(comparison)
    sessions, names = data["sessions"], [run.name for run in comparison.runs]
    pairs = [f"{b}-{a}" for a, b in combinations(names, 2)]
    judges = "; ".join(
        f"`{j['name']}`: "
        + (", ".join(f"{k} {v}" for k, v in j["judge"].items()) or "no evaluation")
        for j in data["judges"]
    )
    lines = [
        "# Judge comparison on stored sessions",
        "",
        f"{sessions['n']} sessions, {sessions['turns']} answered turns ("
        + ", ".join(f"{k}: {v}" for k, v in sessions["by_language"].items())
        + f"). Judges: {judges}.",
        f"Intervals: {CONFIDENCE:.0%} percentile bootstrap, {comparison.resamples} resamples, "
        f"seed {comparison.seed}. Difference and bias = second judge minus first, in points. "
        "Nothing was stored.",
        "",
        "## Scores per turn",
        "",
        "| session | turn | lang | "
        + " | ".join(f"`{n}`" for n in names)
        + "".join(f" | {p.replace('-', ' − ')}" for p in pairs)
        + " |",
        "|" + "---|" * (3 + len(names) + len(pairs)),
    ]
    for item in data["items"]:
        cells = [
            item["session_id"][:8],
            "flow" if item["turn"] is None else str(item["turn"]),
            item["language"],
            *(_score(item["scores"][n]) for n in names),
            *(_difference(item["differences"][p]) for p in pairs),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for pair in comparison.comparisons:
        lines += agreement_section(
            f"Judge `{pair.second}` vs judge `{pair.first}`",
            f"`{pair.first}` is the reference; items both judges scored. Slices: `{TURNS}` "
            f"(every turn, then per language) and `{FLOWS}` (one per session).",
            pair.agreement,
            pair.first,
            pair.second,
            confusion_of=TURNS,
        )
    for judge in data["judges"]:
        if judge["failures"]:
            lines += ["", f"`{judge['name']}` could not score {len(judge['failures'])} items:", ""]
            lines += [f"- `{key}`: {reason}" for key, reason in sorted(judge["failures"].items())]
    return "\n".join(lines) + "\n"
