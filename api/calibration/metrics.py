"""Agreement statistics between two lists of scores, with seeded bootstrap 95% intervals.

`reference` is the human score (or, judge against judge, the first judge's), `scores` the
judge's; both are on 0-100. The statistics come from scipy and scikit-learn, never written
by hand:

- Spearman's rho and Kendall's tau-b (`scipy.stats`): does the judge rank answers as the
  rater does?
- quadratic weighted kappa on the five bands of `bands` (`sklearn.metrics.
  cohen_kappa_score(weights="quadratic")` with all five band labels fixed, so a missing band
  does not change the weights): does it put answers in the same band, near misses costing
  less than far ones?
- MAE and mean bias (judge minus reference; > 0 = the judge is more generous), in points.
- pair accuracy: over every pair of answers *to the same question* whose reference scores
  differ by more than `min_gap` points, the share the judge orders the same way (a judge tie
  counts one half). Same-question pairs are what a hiring decision compares; the gap keeps
  pairs the rater could not really tell apart out of the figure.

Intervals: percentile bootstrap over items (over pairs for pair accuracy) with
`numpy.random.default_rng(seed)`, so the same labels and seed give the same report. A
statistic that is undefined (fewer than two distinct values, too few items) is `None`, and
its interval too; resamples where it is undefined are left out of the interval, which is
`None` when more than half of them are.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from api.calibration.bands import BAND_NAMES, UPPER_EDGES
from api.calibration.defaults import DEFAULT_PAIR_GAP, DEFAULT_RESAMPLES, DEFAULT_SEED

Scores = npt.NDArray[np.float64]
Statistic = Callable[[Scores, Scores], float]

CONFIDENCE = 0.95


def bands_of(scores: Scores) -> npt.NDArray[np.int64]:
    """Ordinal band (0-4) of every score (same rule as `bands.band_index`)."""
    return np.searchsorted(np.asarray(UPPER_EDGES), scores, side="left").astype(np.int64)


def _spearman(reference: Scores, scores: Scores) -> float:
    return float(stats.spearmanr(reference, scores).statistic)


def _kendall(reference: Scores, scores: Scores) -> float:
    return float(stats.kendalltau(reference, scores).statistic)


def _qwk(reference: Scores, scores: Scores) -> float:
    return float(
        cohen_kappa_score(
            bands_of(reference),
            bands_of(scores),
            labels=list(range(len(BAND_NAMES))),
            weights="quadratic",
        )
    )


def _mae(reference: Scores, scores: Scores) -> float:
    return float(np.mean(np.abs(scores - reference)))


def _bias(reference: Scores, scores: Scores) -> float:
    return float(np.mean(scores - reference))


#: Statistics computed on items, in report order.
ITEM_STATISTICS: dict[str, Statistic] = {
    "spearman": _spearman,
    "kendall": _kendall,
    "qwk": _qwk,
    "mae": _mae,
    "bias": _bias,
}


@dataclass(frozen=True)
class Estimate:
    """A statistic and its bootstrap 95% interval (None where undefined)."""

    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Agreement:
    """Every statistic for one slice of the labels (a language, or all)."""

    n: int
    pairs: int
    statistics: dict[str, Estimate]
    confusion: list[list[int]]
    """Band confusion matrix: rows = reference band, columns = judge band."""


def _defined(value: float) -> float | None:
    return None if math.isnan(value) else value


def _quiet(statistic: Statistic, reference: Scores, scores: Scores) -> float:
    """The statistic, NaN where undefined (constant input) without a warning."""
    if len(reference) < 2:
        return math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return statistic(reference, scores)


def _interval(samples: Sequence[float]) -> tuple[float | None, float | None]:
    valid = np.asarray([s for s in samples if not math.isnan(s)])
    if len(valid) * 2 < len(samples) or len(valid) == 0:
        return None, None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(valid, [tail, 100 - tail])
    return float(low), float(high)


def estimate(
    statistic: Statistic,
    reference: Scores,
    scores: Scores,
    *,
    rng: np.random.Generator,
    resamples: int,
) -> Estimate:
    """The statistic on the items and its percentile bootstrap interval over items."""
    value = _defined(_quiet(statistic, reference, scores))
    if value is None:
        return Estimate(None)
    draws = rng.integers(0, len(reference), size=(resamples, len(reference)))
    low, high = _interval([_quiet(statistic, reference[i], scores[i]) for i in draws])
    return Estimate(value, low, high)


def same_question_pairs(
    groups: Sequence[str], reference: Scores, min_gap: float
) -> list[tuple[int, int]]:
    """(better, worse) item indices: same group, reference gap above `min_gap`."""
    by_group: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        by_group.setdefault(group, []).append(index)
    pairs = []
    for members in by_group.values():
        for a, b in combinations(members, 2):
            if abs(reference[a] - reference[b]) > min_gap:
                pairs.append((a, b) if reference[a] > reference[b] else (b, a))
    return pairs


def pair_accuracy(
    pairs: Sequence[tuple[int, int]], scores: Scores, *, rng: np.random.Generator, resamples: int
) -> Estimate:
    """Share of (better, worse) pairs the scores order the same way; ties count one half."""
    if not pairs:
        return Estimate(None)
    better = scores[[a for a, _ in pairs]]
    worse = scores[[b for _, b in pairs]]
    hits = np.where(better > worse, 1.0, np.where(better == worse, 0.5, 0.0))
    draws = rng.integers(0, len(hits), size=(resamples, len(hits)))
    low, high = _interval([float(np.mean(hits[i])) for i in draws])
    return Estimate(float(np.mean(hits)), low, high)


def agreement(
    reference: Sequence[float],
    scores: Sequence[float],
    *,
    groups: Sequence[str] | None = None,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
    min_gap: float = DEFAULT_PAIR_GAP,
) -> Agreement:
    """Every statistic of `scores` against `reference` (pair accuracy needs `groups`)."""
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(scores, dtype=np.float64)
    if ref.shape != got.shape:
        raise ValueError(f"{len(ref)} reference scores but {len(got)} judge scores")
    rng = np.random.default_rng(seed)
    statistics = {
        name: estimate(statistic, ref, got, rng=rng, resamples=resamples)
        for name, statistic in ITEM_STATISTICS.items()
    }
    pairs = same_question_pairs(groups, ref, min_gap) if groups is not None else []
    if groups is not None:
        statistics["pair_accuracy"] = pair_accuracy(pairs, got, rng=rng, resamples=resamples)
    labels = list(range(len(BAND_NAMES)))
    confusion = (
        confusion_matrix(bands_of(ref), bands_of(got), labels=labels).tolist()
        if len(ref)
        else [[0] * len(labels) for _ in labels]
    )
    return Agreement(
        n=len(ref),
        pairs=len(pairs),
        statistics=statistics,
        confusion=[[int(c) for c in row] for row in confusion],
    )
