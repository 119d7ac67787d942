"""The wording of the heuristic judge's analyses, in the interview's language.

Templates live in `lexicons/wording.json` (English and Korean, the Korean written as a
native interviewer would say it); this module only picks and fills them. The language is
the interview's, not the answer's script: a Korean interview gets Korean analyses even for
an answer written mostly in English terms.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from nodes.judges.heuristic.features import normalise_language
from nodes.judges.lexicons import load


@cache
def _templates(language: str) -> dict[str, Any]:
    data: dict[str, Any] = load("wording")[normalise_language(language)]
    return data


def text(language: str, path: str, **values: object) -> str:
    """The template at `path` ("guard.echo", "improvements.short" ...) filled with `values`."""
    node: Any = _templates(language)
    for part in path.split("."):
        node = node[part]
    assert isinstance(node, str), path
    return node.format(**values)


def band(score: float) -> str:
    """The band key of a score."""
    return (
        "strong"
        if score >= 75
        else "solid"
        if score >= 55
        else "partial"
        if score >= 35
        else "weak"
    )


def band_name(language: str, score: float) -> str:
    """The band of a score in the interview's language ("solid" / "양호한")."""
    return text(language, f"bands.{band(score)}")


def join_items(language: str, items: list[str], limit: int = 3) -> str:
    """Items joined for a sentence ('a, b, c' / 'a, b, c'), at most `limit`."""
    shown = items[:limit]
    rest = len(items) - len(shown)
    if normalise_language(language) == "ko":
        return ", ".join(f"'{i}'" for i in shown) + (f" 외 {rest}개" if rest else "")
    return "; ".join(shown) + (f" (+{rest} more)" if rest else "")


def sentence(value: str) -> str:
    """`value` capitalised (English) and without a trailing period (callers add one)."""
    value = value.strip().rstrip(".")
    return value[:1].upper() + value[1:] if value else value
