"""`turnjudge export`: a run's evaluations round-trip into pandas, in every format."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest

from api.export import ExportFormat, write_export
from storage.database import DatabaseUrls
from storage.exports import evaluation_records
from storage.services import Storage
from storage.sessions import TranscriptTurn
from tests.support.offline_process import run_offline

pytestmark = pytest.mark.integration

JUDGE = {"kind": "heuristic", "model": "all-MiniLM-L6-v2", "prompt_version": "h1"}


def _details(score: float, criteria: dict[str, float], flags: list[str]) -> dict[str, object]:
    return {
        "score": score,
        "analysis": f"scored {score}",
        "rubrics": {name: {"score": value, "reason": "r"} for name, value in criteria.items()},
        "flags": flags,
        "judge": JUDGE,
        "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15, "calls": 1},
    }


async def _stored_session(storage: Storage, run: str, turns: int, language: str) -> uuid.UUID:
    session = await storage.sessions.create_session(
        participant_id=f"p-{uuid.uuid4().hex[:6]}",
        position="backend",
        language=language,
        max_turns=turns,
        metadata={"run": run, "tags": {"cohort": "a"}},
    )
    await storage.sessions.save_transcript(
        session.id,
        [
            TranscriptTurn(question_text=f"질문 {n}?", answer_text=f"답변 {n}")
            for n in range(1, turns + 1)
        ],
    )
    for turn in range(1, turns + 1):
        await storage.evaluations.save_turn_evaluation(
            session.id, turn, _details(50 + turn, {"relevance": 60, "length": 40}, ["echo"])
        )
    await storage.evaluations.save_holistic_evaluation(
        session.id, _details(70, {"consistency": 80}, [])
    )
    await storage.evaluations.close_session(session.id)
    return session.id


@pytest.fixture
async def run_name(storage: Storage) -> str:
    name = f"run-{uuid.uuid4().hex[:8]}"
    await _stored_session(storage, name, 3, "ko")
    await _stored_session(storage, name, 2, "en")
    await _stored_session(storage, f"other-{name}", 2, "en")  # must not be exported
    return name


@pytest.mark.parametrize("fmt", list(ExportFormat))
async def test_export_round_trips_into_pandas(
    storage: Storage, run_name: str, fmt: ExportFormat, tmp_path: Path
) -> None:
    records = await evaluation_records(storage.db, run=run_name)
    path = tmp_path / f"export.{fmt.value}"
    written = write_export(records, fmt, path)

    frame = {
        ExportFormat.CSV: lambda: pd.read_csv(path),
        ExportFormat.PARQUET: lambda: pd.read_parquet(path),
        ExportFormat.JSONL: lambda: pd.read_json(path, lines=True),
    }[fmt]()
    assert written == len(frame) == (3 + 1) + (2 + 1)  # turns + one holistic per session
    expected = {
        "session_id",
        "participant_id",
        "run",
        "position",
        "language",
        "turn",
        "question",
        "answer",
        "score",
        "evaluation_type",
        "flags",
        "judge_kind",
        "judge_model",
        "total_tokens",
        "criterion_relevance",
        "criterion_length",
        "criterion_consistency",
    }
    assert expected <= set(frame.columns)
    assert set(frame["run"]) == {run_name}
    turn_rows = frame[frame["evaluation_type"] == "TURN_EVAL"]
    assert sorted(turn_rows["score"].tolist()) == [51, 51, 52, 52, 53]
    assert set(turn_rows["criterion_relevance"]) == {60}
    holistic = frame[frame["evaluation_type"] == "HOLISTIC_FLOW"]
    assert holistic["turn"].isna().all() and set(holistic["criterion_consistency"]) == {80}
    assert "질문 1?" in set(turn_rows["question"])


async def test_export_command_writes_csv(
    database_urls: DatabaseUrls, run_name: str, tmp_path: Path
) -> None:
    out = tmp_path / "run.csv"
    completed = run_offline(
        database_urls, "api.cli", "export", "--run", run_name, "-f", "csv", "-o", str(out)
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "7 evaluations written" in completed.stderr
    frame = pd.read_csv(out)
    assert len(frame) == 7 and set(frame["run"]) == {run_name}
