"""Runs: sessions stored under a run name and tags, evaluated once however often re-run."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from api.batch import as_submission, queue_file, run_session_id, submit_record
from api.interviews import InterviewService, TranscriptSubmission
from api.schemas import SubmitTranscript
from api.validation import InvalidRequestError
from graph.graph import build_graph
from graph.services import Services
from storage.errors import SessionNotFoundError
from storage.exports import evaluation_records
from storage.services import Storage
from storage.settings import DEFAULT_TENANT

pytestmark = pytest.mark.integration

RECORDS = [
    {
        "participant_id": f"cand-{n}",
        "position": "backend",
        "language": "en",
        "transcript": [
            {
                "question": "How do you keep an API idempotent?",
                "answer": f"Idempotency keys in a unique index, INSERT ON CONFLICT; variant {n}.",
            }
        ],
    }
    for n in range(3)
]


@pytest.fixture
def interviews(offline_services: Services, checkpointer: AsyncPostgresSaver) -> InterviewService:
    return InterviewService(build_graph(checkpointer), offline_services)


async def test_a_run_is_evaluated_once_however_often_it_is_rerun(
    interviews: InterviewService, storage: Storage
) -> None:
    run = f"run-{uuid.uuid4().hex[:8]}"
    first = [
        await submit_record(interviews, record, index, run=run, tags={"cohort": "q4"})
        for index, record in enumerate(RECORDS)
    ]
    again = [
        await submit_record(interviews, record, index, run=run, tags={"cohort": "q4"})
        for index, record in enumerate(RECORDS)
    ]
    assert [r.session_id for r in first] == [r.session_id for r in again]
    assert [r.turns[0].evaluation for r in first] == [r.turns[0].evaluation for r in again]
    assert all(r.run == run and r.tags == {"cohort": "q4"} for r in again)

    records = await evaluation_records(storage.db, run=run)
    assert len(records) == len(RECORDS) * 2  # one TURN_EVAL and one HOLISTIC_FLOW each
    assert len(await evaluation_records(storage.db, run=run, tags={"cohort": "q4"})) == 6
    assert await evaluation_records(storage.db, run=run, tags={"cohort": "other"}) == []


async def test_interviews_carry_run_and_tags(interviews: InterviewService) -> None:
    step = await interviews.start(
        participant_id="p-run",
        position="backend",
        language="en",
        max_turns=1,
        run="pilot",
        tags={"team": "payments"},
    )
    report = await interviews.report(step.session_id)
    assert (report.run, report.tags) == ("pilot", {"team": "payments"})


@pytest.mark.parametrize(
    ("run", "tags", "field"),
    [
        ("a\x00b", None, "run"),
        ("", None, "run"),
        ("ok", {"k": 1}, "tags.k"),
        ("ok", ["k=v"], "tags"),
        ("ok", {f"k{n}": "v" for n in range(21)}, "tags"),
        ("ok", {"\ud800": "v"}, "tags (a key)"),
    ],
)
async def test_bad_run_or_tags_are_refused_before_anything_is_stored(
    interviews: InterviewService, storage: Storage, run: object, tags: object, field: str
) -> None:
    before = len(await storage.sessions.list_sessions())
    with pytest.raises(InvalidRequestError) as refused:
        await interviews.submit_transcript(
            TranscriptSubmission(
                participant_id="p-bad-run",
                position="backend",
                language="en",
                transcript=RECORDS[0]["transcript"],  # type: ignore[arg-type]
                run=run,
                tags=tags,  # type: ignore[arg-type]
            )
        )
    assert refused.value.field == field
    assert len(await storage.sessions.list_sessions()) == before


async def test_queueing_a_run_is_idempotent_and_keeps_run_tags_and_tenant(
    interviews: InterviewService, storage: Storage, tmp_path: Path
) -> None:
    """`evaluate --queue --run`: stored with run, tags and tenant; re-queueing adds nothing."""
    run = f"queued-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "records.jsonl"
    bad = {**RECORDS[0], "position": "astronaut"}
    path.write_text("\n".join(json.dumps(r) for r in [*RECORDS, bad]), "utf-8")

    queued, failures = await queue_file(interviews, path, run=run, tags={"cohort": "q4"})
    assert len(queued) == len(RECORDS) and len(failures) == 1 and "record 4" in failures[0]
    assert queued == [run_session_id(run, i, r["participant_id"]) for i, r in enumerate(RECORDS)]
    jobs = storage.jobs
    first_jobs = [await jobs.latest_job(sid) for sid in queued]
    assert all(job is not None and job.status == "todo" for job in first_jobs)
    for sid in queued:
        report = await interviews.report(sid)
        assert (report.status, report.run, report.tags) == ("queued", run, {"cohort": "q4"})
        assert (await storage.sessions.get_session(sid)).tenant == DEFAULT_TENANT

    again, _ = await queue_file(interviews, path, run=run, tags={"cohort": "q4"})
    assert again == queued
    assert [await jobs.latest_job(sid) for sid in queued] == first_jobs  # the same jobs

    # Evaluated in process meanwhile (same run, same ids): the queued jobs find them closed.
    for index, record in enumerate(RECORDS):
        await submit_record(interviews, record, index, run=run, tags={"cohort": "q4"})
    closed = await interviews.queue_transcripts(
        [
            as_submission(SubmitTranscript.model_validate(r), index=index, run=run)
            for index, r in enumerate(RECORDS)
        ]
    )
    assert [(q.job_id, q.status) for q in closed] == [(None, "completed")] * len(RECORDS)
    with pytest.raises(SessionNotFoundError):  # another tenant cannot queue into the run
        await interviews.queue_transcript(
            as_submission(SubmitTranscript.model_validate(RECORDS[0]), index=0, run=run),
            tenant="globex",
        )


async def test_a_refused_resubmission_fails_its_record_only(
    interviews: InterviewService, storage: Storage, tmp_path: Path
) -> None:
    """Re-queueing a run with one record changed: that record fails, the others are queued."""
    run = f"requeue-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS), "utf-8")
    first, failures = await queue_file(interviews, path, run=run)
    assert failures == [] and len(first) == len(RECORDS)

    changed = [dict(r) for r in RECORDS]
    changed[1] = {**changed[1], "transcript": [{"question": "Another question?", "answer": "no"}]}
    path.write_text("\n".join(json.dumps(r) for r in changed), "utf-8")
    sessions_before = len(await storage.sessions.list_sessions())
    again, failures = await queue_file(interviews, path, run=run)
    assert again == [first[0], first[2]]
    assert len(failures) == 1 and failures[0].startswith("record 2: TurnConflictError")
    assert len(await storage.sessions.list_sessions()) == sessions_before
    stored = await storage.sessions.get_transcript(first[1])
    assert [t.question_text for t in stored] == [
        t["question"]
        for t in RECORDS[1]["transcript"]  # type: ignore[union-attr]
    ]
