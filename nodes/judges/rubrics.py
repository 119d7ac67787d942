"""Rubrics are data: one JSON file per position in `nodes/rubrics/`.

Each file names the position's concepts (keyword lists, English and Korean) and its technical
vocabulary; the heuristic judge measures coverage and specificity against them and the LLM
judge lists the concepts in its prompt. `rubrics/levels/` holds the anchored level
descriptions the LLM judge grades against: five levels per criterion in `default.json`, and
per-position files replacing the criteria whose anchors differ by position (what "specific"
means for a backend engineer is not what it means for a product manager).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal


class UnknownPositionError(LookupError, ValueError):
    """No rubric file exists for the position.

    Also a `ValueError` (the run's input is wrong), so that LangGraph's server (Studio,
    `langgraph dev`) shows its message; it reveals only builtin error kinds.
    """


@dataclass(frozen=True)
class Rubric:
    """The concepts and vocabulary a position is judged on."""

    position: str
    title: str
    concepts: dict[str, tuple[str, ...]]
    technical_terms: tuple[str, ...]


def _read_all() -> dict[str, Rubric]:
    """Parse every rubric file (once, at import: no file I/O later inside the event loop)."""
    rubrics = {}
    for entry in resources.files("nodes.judges").joinpath("rubrics").iterdir():
        if entry.name.endswith(".json"):
            raw = json.loads(entry.read_text("utf-8"))
            rubrics[raw["position"]] = Rubric(
                position=raw["position"],
                title=raw["title"],
                concepts={name: tuple(words) for name, words in raw["concepts"].items()},
                technical_terms=tuple(raw["technical_terms"]),
            )
    return rubrics


_RUBRICS = _read_all()

#: Number of anchored levels per criterion (level n covers `LEVEL_BANDS[n - 1]`).
LEVEL_COUNT = 5


def _read_levels() -> dict[str, dict[str, Any]]:
    """Every level file by stem ("default", "backend", ...), parsed once at import."""
    folder = resources.files("nodes.judges").joinpath("rubrics", "levels")
    return {
        entry.name.removesuffix(".json"): json.loads(entry.read_text("utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".json")
    }


_LEVELS = _read_levels()
LEVEL_BANDS: tuple[tuple[int, int], ...] = tuple(
    (int(lo), int(hi)) for lo, hi in _LEVELS["default"]["bands"]
)


def level_descriptions(position: str, kind: Literal["turn", "flow"]) -> dict[str, tuple[str, ...]]:
    """The anchored levels of each criterion of `kind`, the position's own where it has them.

    Returns:
        criterion -> five descriptions, level 1 (lowest band) first.
    """
    levels = {k: tuple(v) for k, v in _LEVELS["default"][kind].items()}
    override = _LEVELS.get(position, {}).get(kind, {})
    levels.update({k: tuple(v) for k, v in override.items()})
    return levels


def levels_fingerprint() -> str:
    """Every level file as canonical JSON (part of the LLM judge's prompt version)."""
    return json.dumps(_LEVELS, sort_keys=True, ensure_ascii=False)


def available_positions() -> list[str]:
    """Positions that have a rubric file."""
    return sorted(_RUBRICS)


def load_rubric(position: str) -> Rubric:
    """The rubric of `position`, or `UnknownPositionError` listing the known ones."""
    try:
        return _RUBRICS[position]
    except KeyError:
        raise UnknownPositionError(
            f"no rubric for position {position!r}; known: {', '.join(available_positions())}"
        ) from None
