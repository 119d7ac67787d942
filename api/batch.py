"""`turnjudge evaluate`: submission-mode evaluation of transcripts from a JSON/JSONL file.

Each record is validated with the same schema as the HTTP submission endpoint, so a bad record
is reported with the field that is wrong and nothing of it is stored; the other records go on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from api.interviews import InterviewService
from api.schemas import SubmitTranscript


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records from a JSON array or a JSONL file."""
    text = path.read_text("utf-8")
    if text.lstrip().startswith("["):
        records = json.loads(text)
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON array of submissions")
        return records
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def evaluate_file(
    interviews: InterviewService, path: str | Path, *, output: str | None, concurrency: int
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
                report = await SubmitTranscript.model_validate(record).submit(interviews)
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
            print(f"{result['session_id']}  {result['participant_id']:<20} "
                  f"turns={len(result['turns'])}  mean={result['turn_score_mean']}  "
                  f"holistic={holistic}")
    for failure in failures:
        print(failure, file=sys.stderr)
    print(f"{len(records) - len(failures)} evaluated, {len(failures)} failed", file=sys.stderr)
    return len(failures)
