"""`turnjudge evaluate`: submission-mode evaluation of transcripts from a JSON/JSONL file.

Each record is validated with the same schema as the HTTP submission endpoint, so a bad record
is reported with the field that is wrong and nothing of it is stored; the other records go on.

Under a run name (`--run NAME`) each record's session id is derived from the run and the
record (`run_session_id`), so evaluating the same file again under the same run returns the
stored reports instead of adding sessions: a run is evaluated once, never duplicated.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from api.interviews import InterviewService, SessionReport
from api.schemas import SubmitTranscript

#: Namespace of the session ids derived from run names (uuid5).
RUN_NAMESPACE = uuid.UUID("8d7f2c4e-3b1a-5c6d-9e0f-a1b2c3d4e5f6")


def run_session_id(run: str, index: int, participant_id: str) -> uuid.UUID:
    """The session id of record `index` (by `participant_id`) in run `run`: stable across runs."""
    return uuid.uuid5(RUN_NAMESPACE, f"{run}\x1f{index}\x1f{participant_id}")


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records from a JSON array or a JSONL file."""
    text = path.read_text("utf-8")
    if text.lstrip().startswith("["):
        records = json.loads(text)
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON array of submissions")
        return records
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def submit_record(
    interviews: InterviewService,
    record: Mapping[str, Any],
    index: int,
    *,
    run: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> SessionReport:
    """Validate one record like the HTTP route does and submit it (under `run`, if given)."""
    body = SubmitTranscript.model_validate(record)
    session_id = body.session_id
    if session_id is None and run is not None:
        session_id = run_session_id(run, index, body.participant_id)
    return await interviews.submit_transcript(
        participant_id=body.participant_id,
        position=body.position.value,
        language=body.language.value,
        exam_id=body.exam_id,
        session_id=session_id,
        reevaluate=body.reevaluate,
        transcript=[t.item() for t in body.transcript],
        run=run,
        tags=dict(tags) if tags else None,
    )


async def evaluate_file(
    interviews: InterviewService,
    path: str | Path,
    *,
    output: str | None,
    concurrency: int,
    run: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> int:
    """Evaluate every record; print a summary; return how many failed."""
    records = read_records(Path(path))
    semaphore = asyncio.Semaphore(max(1, concurrency))
    results: list[dict[str, Any] | None] = [None] * len(records)
    failures: list[str] = []
    progress = tqdm(total=len(records), desc="evaluating", unit="session", file=sys.stderr)

    async def one(index: int, record: dict[str, Any]) -> None:
        async with semaphore:
            try:
                report = await submit_record(interviews, record, index, run=run, tags=tags)
                results[index] = json.loads(json.dumps(dataclasses.asdict(report), default=str))
            except Exception as exc:  # reported per record; the other records go on
                failures.append(f"record {index + 1}: {type(exc).__name__}: {exc}")
            finally:
                progress.update(1)

    await asyncio.gather(*(one(i, r) for i, r in enumerate(records)))
    progress.close()
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            for result in results:
                if result is not None:
                    handle.write(json.dumps(result, ensure_ascii=False) + "\n")
    for result in results:
        if result is not None:
            holistic = (result.get("holistic") or {}).get("score")
            print(
                f"{result['session_id']}  {result['participant_id']:<20} "
                f"turns={len(result['turns'])}  mean={result['turn_score_mean']}  "
                f"holistic={holistic}"
            )
    for failure in failures:
        print(failure, file=sys.stderr)
    print(f"{len(records) - len(failures)} evaluated, {len(failures)} failed", file=sys.stderr)
    return len(failures)
