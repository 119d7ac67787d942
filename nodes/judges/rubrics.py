"""Rubrics are data: one JSON file per position in `nodes/rubrics/`.

Each file names the position's concepts (keyword lists, English and Korean) and its technical
vocabulary; the heuristic judge measures coverage and specificity against them and the LLM
judge lists the concepts in its prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources


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
