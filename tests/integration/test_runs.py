"""Runs: sessions stored under a run name and tags, evaluated once however often re-run."""

from __future__ import annotations

import uuid

import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from api.batch import submit_record
from api.interviews import InterviewService
from api.validation import InvalidRequestError
from graph.graph import build_graph
from graph.services import Services
from storage.exports import evaluation_records
from storage.services import Storage

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
            participant_id="p-bad-run",
            position="backend",
            language="en",
            transcript=RECORDS[0]["transcript"],  # type: ignore[arg-type]
            run=run,
            tags=tags,  # type: ignore[arg-type]
        )
    assert refused.value.field == field
    assert len(await storage.sessions.list_sessions()) == before
