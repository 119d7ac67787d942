"""`turnjudge export`: stored evaluations as one flat table (CSV, Parquet or JSONL).

One row per evaluation, with its session, run, position, language, turn, question, answer,
score, one `criterion_<name>` column per rubric criterion found in the export, the seed
fields (feedback, keywords, intent, intent types), the emotion summary (`emotion_dominant` and
one `emotion_<name>` column per emotion found: the turn's scores, or the session's means on a
HOLISTIC_FLOW row), flags, judge, model, prompt version and tokens, so a run loads straight
into pandas or a spreadsheet.
"""

from __future__ import annotations

import csv
import enum
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.parquet as pq

from storage.emotions import emotion_vocabulary
from storage.exports import EvaluationRecord

CRITERION_PREFIX = "criterion_"
EMOTION_PREFIX = "emotion_"

#: Columns in the order every format writes them (criteria columns follow `analysis`).
LEADING_COLUMNS = (
    "session_id",
    "participant_id",
    "run",
    "tags",
    "position",
    "language",
    "session_ended_at",
    "evaluation_type",
    "turn",
    "question",
    "answer",
    "score",
    "analysis",
)
#: Seed 000 §4.1 / seed 002 fields of `details`, after the criteria.
SEED_COLUMNS = ("feedback", "keywords", "intent", "intent_types")
TRAILING_COLUMNS = (
    "flags",
    "judge_kind",
    "judge_model",
    "prompt_version",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "llm_calls",
    "latency_ms",
    "evaluated_at",
)


class ExportFormat(enum.StrEnum):
    """File formats `turnjudge export` writes."""

    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"


def _criteria_names(records: Sequence[EvaluationRecord]) -> list[str]:
    names = {name for record in records for name in (record.details.get("rubrics") or {})}
    return sorted(names)


def _emotion_names(records: Sequence[EvaluationRecord]) -> list[str]:
    """Emotions scored anywhere in the export, in the vocabulary's order."""
    found = {
        name for record in records for name in ((record.emotion or {}).get("emotion_scores") or {})
    }
    return [name for name in emotion_vocabulary() if name in found]


def flatten(records: Sequence[EvaluationRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows): one dict per evaluation, every row with every column.

    Emotion columns appear only when some evaluation has an emotion summary.
    """
    criteria = _criteria_names(records)
    emotions = _emotion_names(records)
    emotion_columns = [f"{EMOTION_PREFIX}dominant", *(EMOTION_PREFIX + n for n in emotions)]
    columns = [
        *LEADING_COLUMNS,
        *(CRITERION_PREFIX + name for name in criteria),
        *SEED_COLUMNS,
        *(emotion_columns if emotions else ()),
        *TRAILING_COLUMNS,
    ]
    rows: list[dict[str, Any]] = []
    for record in records:
        details = record.details
        rubrics = details.get("rubrics") or {}
        judge = details.get("judge") or {}
        usage = details.get("usage") or {}
        row: dict[str, Any] = {
            "session_id": str(record.session_id),
            "participant_id": record.participant_id,
            "run": record.run,
            "tags": record.tags,
            "position": record.position,
            "language": record.language,
            "session_ended_at": record.ended_at.isoformat() if record.ended_at else None,
            "evaluation_type": record.evaluation_type,
            "turn": record.turn,
            "question": record.question,
            "answer": record.answer,
            "score": float(details["score"]),
            "analysis": details.get("analysis"),
            "feedback": details.get("feedback"),
            "keywords": list(details.get("keywords") or []),
            "intent": details.get("intent"),
            "intent_types": list(details.get("intent_types") or []),
            "flags": list(details.get("flags") or []),
            "judge_kind": judge.get("kind"),
            "judge_model": judge.get("model"),
            "prompt_version": judge.get("prompt_version"),
            "input_tokens": usage.get("input_tokens"),
            "output_tokens": usage.get("output_tokens"),
            "total_tokens": usage.get("total_tokens"),
            "llm_calls": usage.get("calls"),
            "latency_ms": details.get("latency_ms"),
            "evaluated_at": record.created_at.isoformat(),
        }
        for name in criteria:
            entry = rubrics.get(name)
            row[CRITERION_PREFIX + name] = (
                float(entry["score"]) if isinstance(entry, dict) and "score" in entry else None
            )
        emotion = record.emotion or {}
        row[f"{EMOTION_PREFIX}dominant"] = emotion.get("dominant_emotion")
        for name in emotions:
            value = (emotion.get("emotion_scores") or {}).get(name)
            row[EMOTION_PREFIX + name] = float(value) if value is not None else None
        rows.append({column: row.get(column) for column in columns})
    return columns, rows


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list):
        return ";".join(str(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""
    return value


def write_csv(columns: list[str], rows: list[dict[str, Any]], stream: TextIO) -> None:
    """CSV with a header; lists (flags, keywords, intent types) joined by ';', tags as JSON."""
    writer = csv.DictWriter(stream, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_cell(value) for key, value in row.items()})


def write_jsonl(rows: list[dict[str, Any]], stream: TextIO) -> None:
    """One JSON object per line (UTF-8, Korean kept as is)."""
    for row in rows:
        stream.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_parquet(columns: list[str], rows: list[dict[str, Any]], path: Path) -> None:
    """A Parquet file; tags are stored as a JSON string (keys vary between sessions)."""
    table = pa.Table.from_pylist(
        [{**row, "tags": json.dumps(row["tags"], ensure_ascii=False)} for row in rows]
        if rows
        else [],
        schema=None if rows else pa.schema([(column, pa.string()) for column in columns]),
    )
    pq.write_table(table, path)


def write_export(
    records: Sequence[EvaluationRecord], fmt: ExportFormat, output: Path | None
) -> int:
    """Write `records` as `fmt` to `output` (stdout when None; Parquet needs a file)."""
    columns, rows = flatten(records)
    if fmt is ExportFormat.PARQUET:
        if output is None:
            raise ValueError("parquet needs --output FILE (it is a binary format)")
        write_parquet(columns, rows, output)
        return len(rows)
    if output is None:
        _write_text(fmt, columns, rows, sys.stdout)
    else:
        with output.open("w", encoding="utf-8", newline="") as stream:
            _write_text(fmt, columns, rows, stream)
    return len(rows)


def _write_text(
    fmt: ExportFormat, columns: list[str], rows: list[dict[str, Any]], stream: TextIO
) -> None:
    if fmt is ExportFormat.CSV:
        write_csv(columns, rows, stream)
    else:
        write_jsonl(rows, stream)
