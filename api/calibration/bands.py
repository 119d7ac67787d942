"""The five score bands shared by labellers, the LLM judge's scale and the kappa statistic.

They are the bands the LLM judge's prompt already names (0-20 missing or irrelevant, 21-40
weak, 41-60 adequate, 61-80 good, 81-100 excellent), defined here once so that a label's
`band`, the quadratic weighted kappa and the labelling guide (notebooks/data/LABELLING.md)
cannot drift apart. A score belongs to the first band whose upper edge it does not exceed,
so 20 is "missing", 20.5 and 21 are "weak".
"""

from __future__ import annotations

from bisect import bisect_left

#: Band names, lowest first; a band's index is its ordinal value for kappa.
BAND_NAMES: tuple[str, ...] = ("missing", "weak", "adequate", "good", "excellent")
#: Inclusive upper edge of every band but the last (which ends at 100).
UPPER_EDGES: tuple[float, ...] = (20.0, 40.0, 60.0, 80.0)


def band_index(score: float) -> int:
    """The ordinal band (0-4) of a score in [0, 100]."""
    return bisect_left(UPPER_EDGES, score)


def band_name(score: float) -> str:
    """The band name of a score in [0, 100]."""
    return BAND_NAMES[band_index(score)]


def band_range(name: str) -> tuple[float, float]:
    """The inclusive (low, high) score range of a band, for messages and reports."""
    index = BAND_NAMES.index(name)
    low = 0.0 if index == 0 else UPPER_EDGES[index - 1] + 1
    high = UPPER_EDGES[index] if index < len(UPPER_EDGES) else 100.0
    return low, high
