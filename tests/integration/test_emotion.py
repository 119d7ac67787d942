"""Emotion summaries (seed 000 §4.2) end to end: answers, transcripts and resume values carry
them, the database stores them per turn and per session, reports and exports return them,
a bad one changes nothing, and no score depends on them.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import httpx
import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.types import Command
from pydantic import ValidationError

from api.batch import as_submission
from api.export import flatten
from api.interviews import InterviewService, TranscriptSubmission
from api.schemas import SubmitTranscript
from api.validation import InvalidRequestError
from graph import Services, build_graph, use_services
from storage.errors import SessionEndedError, TurnConflictError
from storage.exports import evaluation_records
from storage.models import EvaluationType
from storage.services import Storage
from tests.support.http import (
    ANSWER,
    HEADERS_A,
    assert_error,
    table_counts,
)

pytestmark = pytest.mark.integration

CONFIDENT = {
    "dominant_emotion": "confidence",
    "emotion_scores": {"confidence": 0.8, "nervousness": 0.1, "calm": 0.1},
    "facial_expression_data": {"au": {"AU12": 0.7}, "frames": [[0, 0.5], [1, 0.6]]},
}
NERVOUS = {
    "dominant_emotion": "nervousness",
    "emotion_scores": {"confidence": 0.2, "nervousness": 0.7},
}
TRANSCRIPT = [
    {"question": "How would you make a payment webhook idempotent?", "answer": ANSWER},
    {
        "question": "How do you find a slow SQL query in production?",
        "answer": "I start from pg_stat_statements sorted by total time, then EXPLAIN ANALYZE the "
        "worst query; last year an index on (tenant_id, created_at) cut p95 from 800 ms "
        "to 40 ms because the planner stopped scanning the whole table.",
    },
]


@pytest.fixture(scope="module")
def client(tenant_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The module's client, sending tenant acme's key unless a request says otherwise."""
    tenant_client.headers.update(HEADERS_A)
    return tenant_client


@pytest.fixture
def interviews(offline_services: Services, checkpointer: AsyncPostgresSaver) -> InterviewService:
    return InterviewService(build_graph(checkpointer), offline_services)


def _submission(emotions: list[dict[str, Any] | None], participant: str) -> dict[str, Any]:
    turns = []
    for item, emotion in zip(TRANSCRIPT, emotions, strict=True):
        turns.append({**item, "emotion": emotion} if emotion is not None else dict(item))
    return {"participant_id": participant, "position": "backend", "transcript": turns}


async def test_an_interview_stores_emotions_per_turn_and_summarises_them(
    client: httpx.AsyncClient, storage: Storage
) -> None:
    start = await client.post(
        "/interviews", json={"participant_id": "p-emo", "position": "backend", "max_turns": 3}
    )
    session_id = start.json()["session_id"]
    answers = f"/interviews/{session_id}/answers"
    step = await client.post(answers, json={"answer": ANSWER, "emotion": CONFIDENT})
    assert step.status_code == 200, step.text
    # a re-send without the emotion is a re-send; with a different one, a conflict
    again = await client.post(f"{answers}?turn=1", json={"answer": ANSWER})
    assert again.status_code == 200 and again.json()["question"]["turn"] == 2
    conflict = await client.post(f"{answers}?turn=1", json={"answer": ANSWER, "emotion": NERVOUS})
    assert_error(conflict, 409)
    step = await client.post(
        answers, json={"answer": TRANSCRIPT[1]["answer"], "emotion": NERVOUS, "stop": True}
    )
    assert step.status_code == 200 and step.json()["status"] == "completed", step.text

    report = (await client.get(f"/sessions/{session_id}/report")).json()
    assert [t["emotion"] for t in report["turns"]] == [CONFIDENT, NERVOUS]
    assert report["emotion"] == {
        "dominant_emotion": "confidence",
        "emotion_scores": {"confidence": 0.5, "nervousness": 0.4, "calm": 0.05},
        "turns_with_data": 2,
    }
    page = await client.get(f"/sessions/{session_id}/report.html")
    assert page.status_code == 200
    assert "never used in scoring" in page.text and "nervousness" in page.text
    session = await storage.sessions.get_session(uuid.UUID(session_id))
    assert session.emotion_summary == report["emotion"]


async def test_a_session_without_emotions_has_none(client: httpx.AsyncClient) -> None:
    report = (await client.post("/submissions", json=_submission([None, None], "p-none"))).json()
    assert report["emotion"] is None and [t["emotion"] for t in report["turns"]] == [None, None]


@pytest.mark.parametrize(
    ("emotion", "field"),
    [
        (
            {"dominant_emotion": "joy", "emotion_scores": {"joy": 1.5}},
            "body.emotion.emotion_scores.joy",
        ),
        (
            {"dominant_emotion": "joy", "emotion_scores": {"happiness": 0.5}},
            "body.emotion.emotion_scores.happiness",
        ),
        (
            {"dominant_emotion": "anger", "emotion_scores": {"joy": 0.5}},
            "body.emotion.dominant_emotion",
        ),
        (
            {"dominant_emotion": "joy", "emotion_scores": {"joy": 0.5}, "extra": 1},
            "body.emotion.extra",
        ),
        (
            {
                "dominant_emotion": "joy",
                "emotion_scores": {"joy": 0.5},
                "facial_expression_data": {"x": "a\u0000b"},
            },
            "body.emotion.facial_expression_data",
        ),
        (
            {
                "dominant_emotion": "joy",
                "emotion_scores": {"joy": 0.5},
                "facial_expression_data": {"blob": "x" * 40_000},
            },
            "body.emotion.facial_expression_data",
        ),
        (
            {"dominant_emotion": "joy", "emotion_scores": {"joy": True}},
            "body.emotion.emotion_scores.joy",
        ),
    ],
)
async def test_a_bad_emotion_is_422_naming_the_field_and_changes_nothing(
    client: httpx.AsyncClient, storage: Storage, emotion: dict[str, Any], field: str
) -> None:
    start = (
        await client.post(
            "/interviews", json={"participant_id": "p-bad-emo", "position": "backend"}
        )
    ).json()
    session_id = start["session_id"]
    before = await table_counts(storage)
    reply = await client.post(
        f"/interviews/{session_id}/answers", json={"answer": ANSWER, "emotion": emotion}
    )
    assert_error(reply, 422, field)
    body = _submission([emotion, None], "p-bad-emo")
    assert_error(
        await client.post("/submissions", json=body),
        422,
        field.replace("body.", "body.transcript[0].", 1),
    )
    assert await table_counts(storage) == before
    transcript = await storage.sessions.get_transcript(uuid.UUID(session_id))
    assert [t.answer_text for t in transcript] == [None]
    pending = (await client.get(f"/interviews/{session_id}")).json()
    assert pending["question"]["turn"] == 1  # still waiting, unharmed


async def test_an_emotion_without_an_answer_is_refused(client: httpx.AsyncClient) -> None:
    start = (
        await client.post(
            "/interviews", json={"participant_id": "p-stop-emo", "position": "backend"}
        )
    ).json()
    reply = await client.post(
        f"/interviews/{start['session_id']}/answers", json={"stop": True, "emotion": CONFIDENT}
    )
    assert_error(reply, 422, "body.emotion")


async def test_the_facade_refuses_before_any_run(
    interviews: InterviewService, storage: Storage
) -> None:
    step = await interviews.start(
        participant_id="p-facade", position="backend", language="en", max_turns=2
    )
    before = await table_counts(storage)
    with pytest.raises(InvalidRequestError) as error:
        await interviews.answer(
            step.session_id,
            ANSWER,
            emotion={"dominant_emotion": "joy", "emotion_scores": {"joy": 9}},
        )
    assert error.value.field == "emotion.emotion_scores.joy"
    assert await table_counts(storage) == before
    await interviews.answer(step.session_id, ANSWER, emotion=CONFIDENT)
    transcript = await storage.sessions.get_transcript(step.session_id)
    assert transcript[0].emotion == CONFIDENT


async def test_a_bad_resume_value_is_asked_again_and_stores_nothing(
    offline_services: Services, checkpointer: AsyncPostgresSaver, storage: Storage
) -> None:
    graph = build_graph(checkpointer)
    session_id = uuid.uuid4()
    config: Any = {"configurable": {"thread_id": str(session_id)}}
    with use_services(offline_services):
        await graph.ainvoke(
            {"participant_id": "p-graph", "position": "backend", "max_turns": 1}, config
        )
        bad = {
            "answer": ANSWER,
            "emotion": {"dominant_emotion": "fear", "emotion_scores": {"fear": 0.5, "rage": 0.5}},
        }
        result = await graph.ainvoke(Command(resume=bad), config)
        prompt = result["__interrupt__"][0].value
        assert prompt["turn"] == 1 and "emotion.emotion_scores.rage" in prompt["error"]
        assert (await storage.sessions.get_transcript(session_id))[0].answer_text is None
        result = await graph.ainvoke(Command(resume={"answer": ANSWER, "emotion": NERVOUS}), config)
    assert result["status"] == "completed"
    session = await storage.sessions.get_session(session_id)
    assert session.emotion_summary is not None
    assert session.emotion_summary["dominant_emotion"] == "nervousness"


async def test_a_resubmission_with_other_emotions_is_a_conflict(
    interviews: InterviewService,
) -> None:
    submission = TranscriptSubmission(
        participant_id="p-resub",
        position="backend",
        language="en",
        transcript=_submission([CONFIDENT, None], "p-resub")["transcript"],
    )
    first = await interviews.submit_transcript(submission)
    again = await interviews.submit_transcript(replace(submission, session_id=first.session_id))
    assert again == first
    with pytest.raises(SessionEndedError):  # closed, and not the same transcript
        await interviews.submit_transcript(
            replace(
                submission,
                session_id=first.session_id,
                transcript=_submission([NERVOUS, None], "p-resub")["transcript"],
            )
        )


async def test_storage_refuses_a_different_emotion_for_a_stored_turn(storage: Storage) -> None:
    session = await storage.sessions.create_session(
        participant_id="p-store", position="backend", language="en", max_turns=1
    )
    await storage.sessions.add_question(session.id, 1, "q?")
    stored = await storage.sessions.record_answer(session.id, 1, "an answer", CONFIDENT)
    assert stored.emotion == CONFIDENT
    assert (await storage.sessions.record_answer(session.id, 1, "an answer")).emotion == CONFIDENT
    with pytest.raises(TurnConflictError):
        await storage.sessions.record_answer(session.id, 1, "an answer", NERVOUS)


async def test_scores_never_depend_on_emotions(client: httpx.AsyncClient, storage: Storage) -> None:
    reports = []
    for participant, emotions in (
        ("p-calm", [CONFIDENT, CONFIDENT]),
        ("p-tense", [NERVOUS, {**NERVOUS, "dominant_emotion": "confidence"}]),
        ("p-blank", [None, None]),
    ):
        reply = await client.post("/submissions", json=_submission(emotions, participant))
        assert reply.status_code == 200, reply.text
        reports.append(reply.json())

    def judged(report: dict[str, Any]) -> list[dict[str, Any]]:
        kept = [t["evaluation"] for t in report["turns"]] + [report["holistic"]]
        return [{k: v for k, v in d.items() if k != "latency_ms"} for d in kept]

    assert judged(reports[0]) == judged(reports[1]) == judged(reports[2])
    assert reports[0]["emotion"]["dominant_emotion"] == "confidence"
    assert reports[1]["emotion"]["dominant_emotion"] == "nervousness"


async def test_exports_carry_emotion_columns(
    interviews: InterviewService, storage: Storage
) -> None:
    run = f"emo-{uuid.uuid4().hex[:8]}"
    report = await interviews.submit_transcript(
        TranscriptSubmission(
            participant_id="p-export",
            position="backend",
            language="en",
            run=run,
            transcript=_submission([CONFIDENT, NERVOUS], "p-export")["transcript"],
        )
    )
    assert report.emotion is not None
    columns, rows = flatten(await evaluation_records(storage.db, run=run))
    assert {"emotion_dominant", "emotion_confidence", "emotion_nervousness", "emotion_calm"} <= set(
        columns
    )
    by_type = {(r["evaluation_type"], r["turn"]): r for r in rows}
    turn1 = by_type[(EvaluationType.TURN_EVAL.value, 1)]
    assert (turn1["emotion_dominant"], turn1["emotion_confidence"]) == ("confidence", 0.8)
    assert by_type[(EvaluationType.TURN_EVAL.value, 2)]["emotion_calm"] is None
    flow = by_type[(EvaluationType.HOLISTIC_FLOW.value, None)]
    assert flow["emotion_dominant"] == report.emotion["dominant_emotion"] == "confidence"
    assert flow["emotion_nervousness"] == 0.4


async def test_a_queued_transcript_keeps_its_emotions(
    interviews: InterviewService, storage: Storage
) -> None:
    body = SubmitTranscript.model_validate(_submission([CONFIDENT, None], "p-queued"))
    queued = await interviews.queue_transcript(as_submission(body))
    assert queued.job_id is not None
    stored = await storage.sessions.get_transcript(queued.session_id)
    assert [turn.emotion for turn in stored] == [CONFIDENT, None]
    bad = _submission([{"dominant_emotion": "joy", "emotion_scores": {"rage": 1.0}}, None], "p-bad")
    before = await table_counts(storage)
    with pytest.raises(ValidationError):
        SubmitTranscript.model_validate(bad)
    with pytest.raises(InvalidRequestError, match=r"transcript\[0\]\.emotion"):
        await interviews.queue_transcript(
            TranscriptSubmission(
                participant_id="p-bad",
                position="backend",
                language="en",
                transcript=bad["transcript"],
            )
        )
    assert await table_counts(storage) == before
