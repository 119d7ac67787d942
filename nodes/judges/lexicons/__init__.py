"""Word lists, term maps, calibration and wording as data (JSON), loaded once at import.

Everything a judge decides with words lives in these files rather than in code: the guards'
non-answer phrases and thresholds, the injection cues, the English <-> Korean term map,
specificity markers, the heuristic's calibration and the wording of its analyses.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def load(name: str) -> dict[str, Any]:
    """The parsed lexicon `name` (e.g. "guards" for `lexicons/guards.json`), cached."""
    text = resources.files("nodes.judges").joinpath("lexicons", f"{name}.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data
