"""Defaults of a calibration run, shared by the library and `turnjudge calibrate`.

Kept apart from `metrics` (which imports scipy and scikit-learn) so the CLI can show them in
`--help` without loading the statistics stack at start-up.
"""

from __future__ import annotations

#: Seed of the bootstrap resampling: the same labels and seed give the same report.
DEFAULT_SEED = 20261128
#: Bootstrap resamples per statistic.
DEFAULT_RESAMPLES = 2000
#: Human-score gap (points) above which two answers to one question form a pair.
DEFAULT_PAIR_GAP = 10.0
