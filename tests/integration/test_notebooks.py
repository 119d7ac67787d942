"""The evaluation notebooks execute top to bottom against the test database."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from storage.database import DatabaseUrls

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def execute(name: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=600,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    return notebook


def outputs(notebook: nbformat.NotebookNode, mime: str) -> list[object]:
    return [
        output["data"][mime]
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", []) if mime in output.get("data", {})
    ]


def test_notebooks_run_and_plot(
    database_urls: DatabaseUrls, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernels inherit this environment: they use the test database and the offline judge.
    monkeypatch.setenv("DATABASE_URL", database_urls.sqlalchemy)
    monkeypatch.setenv("JUDGE", "heuristic")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    run = execute("01_run_evaluation.ipynb")
    printed = "".join(
        "".join(o.get("text", "")) for c in run.cells if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert "30 sessions evaluated and closed: True" in printed
    assert outputs(run, "text/html"), "the summary table is missing"

    analyse = execute("02_analyse_scores.ipynb")
    assert len(outputs(analyse, "image/png")) >= 4, "expected four plots"
