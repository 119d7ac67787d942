"""`turnjudge evaluate`: submission-mode evaluation of transcripts from a JSON/JSONL file.

Each record is validated with the same schema as the HTTP submission endpoint, so a bad record
is reported with the field that is wrong and nothing of it is stored; the other records go on.
With `--queue` the records are stored and queued for workers instead (`queue_file`), a batch
of up to `QUEUE_BATCH` per transaction, and `--wait` follows them to the end (`wait_queued`).

Under a run name (`--run NAME`) each record's session id is derived from the run and the
record (`run_session_id`), so evaluating the same file again under the same run returns the
stored reports instead of adding sessions: a run is evaluated once, never duplicated. The
same holds for `--queue`: queueing a run again queues nothing for its closed sessions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from api.interviews import (
    InterviewService,
    RefusedSubmission,
    SessionReport,
    TranscriptSubmission,
)
from api.schemas import SubmitTranscript
from api.validation import InvalidRequestError
from storage.queue import JobQueue

#: Namespace of the session ids derived from run names (uuid5).
RUN_NAMESPACE = uuid.UUID("8d7f2c4e-3b1a-5c6d-9e0f-a1b2c3d4e5f6")
#: Submissions stored and queued per transaction by `queue_file`.
QUEUE_BATCH = 500
#: Seconds between two looks at the queued sessions' progress (`wait_queued`).
POLL_S = 0.5


def run_session_id(run: str, index: int, participant_id: str) -> uuid.UUID:
    """The session id of record `index` (by `participant_id`) in run `run`: stable across runs."""
    return uuid.uuid5(RUN_NAMESPACE, f"{run}\x1f{index}\x1f{participant_id}")


def as_submission(
    body: SubmitTranscript,
    *,
    index: int | None = None,
    run: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> TranscriptSubmission:
    """The facade's submission from a validated HTTP/CLI record.

    The command line's `--run` and `--tag` win over the record's own `run` and `tags`. Under
    a run, a record of a file (`index` = its place in the file) without a `session_id` gets
    the one derived from the run (`run_session_id`), so the same file submitted again under
    the same run names the same sessions. An HTTP body (no index) without one gets a new id.
    """
    run = run or body.run
    tags = tags or body.tags
    session_id = body.session_id
    if session_id is None and run is not None and index is not None:
        session_id = run_session_id(run, index, body.participant_id)
    return TranscriptSubmission(
        participant_id=body.participant_id,
        position=body.position.value,
        language=body.language.value,
        exam_id=body.exam_id,
        session_id=session_id,
        reevaluate=body.reevaluate,
        callback_url=body.callback_url,
        run=run,
        tags=dict(tags) if tags else None,
        transcript=[t.item() for t in body.transcript],
    )


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
    return await interviews.submit_transcript(as_submission(body, index=index, run=run, tags=tags))


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


async def queue_file(
    interviews: InterviewService,
    path: str | Path,
    *,
    callbacks_signed: bool = False,
    batch_size: int = QUEUE_BATCH,
    run: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> tuple[list[uuid.UUID], list[str]]:
    """Store and queue every valid record; return the queued session ids and the failures.

    Under `run`, session ids are derived as `evaluate_file` derives them, so queueing the
    same file again under the same run adds no session and queues nothing for closed ones.
    """
    records = read_records(Path(path))
    valid: list[TranscriptSubmission] = []
    places: list[int] = []  # each valid submission's record number
    failures: list[str] = []
    for index, record in enumerate(records):
        try:
            body = SubmitTranscript.model_validate(record)
            submission = as_submission(body, index=index, run=run, tags=tags)
            InterviewService.check_submission(submission)
            if submission.callback_url is not None and not callbacks_signed:
                raise InvalidRequestError("callback_url", "needs CALLBACK_SECRET on the server")
            valid.append(submission)
            places.append(index + 1)
        except (ValidationError, InvalidRequestError) as exc:
            failures.append(f"record {index + 1}: {type(exc).__name__}: {exc}")
    queued: list[uuid.UUID] = []
    for start in range(0, len(valid), batch_size):
        results = await interviews.queue_transcripts(valid[start : start + batch_size])
        for place, result in zip(places[start : start + batch_size], results, strict=True):
            if isinstance(result, RefusedSubmission):
                error = result.error
                failures.append(f"record {place}: {type(error).__name__}: {error}")
            else:
                queued.append(result.session_id)
    return queued, failures


async def wait_queued(jobs: JobQueue, session_ids: Sequence[uuid.UUID]) -> dict[str, int]:
    """Show a progress bar until every queued session is completed or failed; the counts."""
    progress = tqdm(total=len(session_ids), desc="evaluating", unit="session", file=sys.stderr)
    try:
        while True:
            counts = await jobs.status_counts(session_ids)
            done = counts.get("completed", 0) + counts.get("failed", 0)
            progress.update(done - progress.n)
            progress.set_postfix(failed=counts.get("failed", 0), refresh=False)
            if done >= len(session_ids):
                return counts
            await asyncio.sleep(POLL_S)
    finally:
        progress.close()
