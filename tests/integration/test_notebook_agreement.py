"""Notebook 03 runs calibrate on the shipped labels and draws its four plots, cleanly."""

from __future__ import annotations

import pytest

from api.settings import get_settings
from tests.integration.test_notebooks import execute, outputs, printed, stray_results

pytestmark = pytest.mark.slow


def test_judge_agreement_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel inherits this environment: offline, the heuristic judge only, no database.
    monkeypatch.setenv("JUDGE", "heuristic")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    get_settings.cache_clear()

    notebook = execute("03_judge_agreement.ipynb")
    text = printed(notebook)
    assert "164 labels ({'en': 84, 'ko': 80}), judged by: heuristic" in text
    assert "one judge only" in text
    assert len(outputs(notebook, "image/png")) == 4, "scatter, confusion, bias, per language"
    tables = outputs(notebook, "text/html")
    assert len(tables) == 2, "the agreement table and the largest disagreements"
    assert "Spearman" in str(tables[0]) and "pair accuracy" in str(tables[0])
    assert printed(notebook, "stderr") == "", "warnings or progress bars leaked"
    stray = stray_results(notebook)
    assert stray == [], f"stray outputs: {stray}"
