"""The notebooks execute top to bottom against the test database, cleanly and idempotently."""

from __future__ import annotations

import uuid
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from storage.database import DatabaseUrls
from storage.exports import evaluation_records
from storage.services import Storage

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def execute(name: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    return notebook


def outputs(notebook: nbformat.NotebookNode, mime: str) -> list[object]:
    return [
        output["data"][mime]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if mime in output.get("data", {})
    ]


def printed(notebook: nbformat.NotebookNode, stream: str = "stdout") -> str:
    return "".join(
        "".join(output.get("text", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream" and output.get("name") == stream
    )


def stray_results(notebook: nbformat.NotebookNode) -> list[object]:
    """Cell results shown as neither a table nor a plot (a forgotten `df` or repr)."""
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "execute_result"
        and not {"text/html", "image/png"} & set(output.get("data", {}))
    ]


async def test_notebooks_run_idempotently_and_plot(
    database_urls: DatabaseUrls, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernels inherit this environment: the test database, the offline judge, one run.
    run = f"nb-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DATABASE_URL", database_urls.sqlalchemy)
    monkeypatch.setenv("JUDGE", "heuristic")
    monkeypatch.setenv("TURNJUDGE_RUN", run)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    first = execute("01_run_evaluation.ipynb")
    assert f"30 sessions in run {run!r}, 30 completed" in printed(first)
    assert outputs(first, "text/html"), "the summary table is missing"
    stored = await evaluation_records(storage.db, run=run)
    assert len({record.session_id for record in stored}) == 30

    again = execute("01_run_evaluation.ipynb")  # re-running replaces nothing, adds nothing
    assert f"30 sessions in run {run!r}, 30 completed" in printed(again)
    assert await evaluation_records(storage.db, run=run) == stored

    analyse = execute("02_analyse_scores.ipynb")
    assert f"run {run!r}: 30 sessions" in printed(analyse)
    assert len(outputs(analyse, "image/png")) == 6, "expected six plots"
    # a third of the samples carry emotion summaries: plotted, never judged
    assert "emotion: 35 of 105 turns have an emotion summary" in printed(analyse)
    assert len(outputs(analyse, "text/html")) >= 3, "expected the tables"
    for notebook in (first, again, analyse):
        assert printed(notebook, "stderr") == "", "warnings or progress bars leaked"
        stray = stray_results(notebook)
        assert stray == [], f"stray outputs: {stray}"
