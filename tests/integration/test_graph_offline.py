"""The graph end to end on the real embedded PostgreSQL with the offline judge."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.types import Command
from sqlalchemy import text

from graph import Services, build_graph, use_services
from nodes.close_session import EvaluationIncompleteError
from nodes.judges.rubrics import UnknownPositionError
from nodes.open_session import InvalidInterviewInputError
from storage.errors import SessionEndedError, SessionNotFoundError

pytestmark = pytest.mark.integration

ANSWERS = [
    "In my last project I built an order service on PostgreSQL handling 1,500 requests per "
    "second; we added a composite index and cut p95 latency from 300 ms to 80 ms.",
    "I would use idempotency keys stored with a unique constraint and INSERT ON CONFLICT so "
    "retries never double-charge; we measured zero duplicates over 2 million webhooks.",
    "For caching I put Redis in front of the read path with a 60 second TTL and explicit "
    "invalidation on writes, which took database load down by 70 percent.",
    "During an outage I rolled back first, then traced the errors with structured logs and "
    "found a retry storm; exponential backoff with jitter and a circuit breaker fixed it.",
]


def config_of(session_id: uuid.UUID) -> dict[str, Any]:
    return {"configurable": {"thread_id": str(session_id)}}


async def count_rows(services: Services, session_id: uuid.UUID) -> dict[str, Any]:
    async with services.storage.db.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM prompt_messages WHERE session_id = :s) AS msgs,"
                    " (SELECT count(*) FROM prompt_messages WHERE session_id = :s"
                    "   AND answer_text IS NOT NULL) AS answered,"
                    " (SELECT count(*) FROM prompt_evaluations WHERE session_id = :s"
                    "   AND evaluation_type = 'TURN_EVAL') AS turn_evals,"
                    " (SELECT count(*) FROM prompt_evaluations WHERE session_id = :s"
                    "   AND evaluation_type = 'HOLISTIC_FLOW') AS holistic,"
                    " (SELECT ended_at FROM prompt_sessions WHERE id = :s) AS ended_at"
                ),
                {"s": session_id},
            )
        ).one()
    return dict(row._mapping)


async def test_offline_interview_end_to_end(
    offline_services: Services, checkpointer: AsyncPostgresSaver
) -> None:
    graph = build_graph(checkpointer)
    with use_services(offline_services):
        session_id = uuid.uuid4()
        config = config_of(session_id)
        result = await graph.ainvoke(
            {
                "session_id": str(session_id),
                "participant_id": "p-e2e",
                "position": "backend",
                "max_turns": 4,
            },
            config,
        )
        asked: list[str] = []
        for answer in ANSWERS:
            (interrupt,) = result["__interrupt__"]
            asked.append(interrupt.value["question"])
            assert interrupt.value["turn"] == len(asked)
            result = await graph.ainvoke(Command(resume=answer), config)

        assert "__interrupt__" not in result
        assert result["status"] == "completed"
        assert len(set(asked)) == 4, "a question was repeated within the session"
        assert [e["turn"] for e in result["turn_evaluations"]] == [1, 2, 3, 4]
        assert result["holistic"] is not None
        rows = await count_rows(offline_services, session_id)
        assert rows["msgs"] == 4 and rows["answered"] == 4
        assert rows["turn_evals"] == 4 and rows["holistic"] == 1
        assert rows["ended_at"] is not None
        stored = await offline_services.storage.evaluations.list_evaluations(session_id)
        assert all(e.details["judge"]["kind"] == "heuristic" for e in stored)


async def test_answer_is_persisted_before_evaluation(
    offline_services: Services, checkpointer: AsyncPostgresSaver
) -> None:
    graph = build_graph(checkpointer)
    with use_services(offline_services):
        session_id = uuid.uuid4()
        config = config_of(session_id)
        await graph.ainvoke(
            {"session_id": str(session_id), "position": "devops", "max_turns": 3},
            config,
        )
        # Stop the interview at turn 2 with an answer: the answer is stored, then 6a and 7 run.
        await graph.ainvoke(Command(resume=ANSWERS[0]), config)
        result = await graph.ainvoke(Command(resume={"answer": ANSWERS[3], "stop": True}), config)
        assert result["status"] == "completed"
        transcript = await offline_services.storage.sessions.get_transcript(session_id)
        assert [t.answer_text for t in transcript] == [ANSWERS[0], ANSWERS[3]]
        rows = await count_rows(offline_services, session_id)
        assert rows["turn_evals"] == 2 and rows["holistic"] == 1 and rows["ended_at"] is not None


async def test_bad_resume_value_keeps_the_question_pending(
    offline_services: Services, checkpointer: AsyncPostgresSaver
) -> None:
    graph = build_graph(checkpointer)
    with use_services(offline_services):
        session_id = uuid.uuid4()
        config = config_of(session_id)
        await graph.ainvoke({"session_id": str(session_id), "max_turns": 1}, config)
        result = await graph.ainvoke(Command(resume={"answer": 42}), config)
        (interrupt,) = result["__interrupt__"]
        assert interrupt.value["turn"] == 1
        assert "answer must be a string" in interrupt.value["error"]
        transcript = await offline_services.storage.sessions.get_transcript(session_id)
        assert transcript[0].answer_text is None  # nothing partial stored
        snapshot = await graph.aget_state(config)
        assert snapshot.interrupts, "the question must still be waiting for an answer"
        result = await graph.ainvoke(Command(resume=ANSWERS[1]), config)
        assert result["status"] == "completed"


async def test_unknown_position_is_rejected_before_anything_is_stored(
    offline_services: Services, checkpointer: AsyncPostgresSaver
) -> None:
    graph = build_graph(checkpointer)
    session_id = uuid.uuid4()
    with use_services(offline_services), pytest.raises(UnknownPositionError, match="known"):
        await graph.ainvoke(
            {"session_id": str(session_id), "position": "astronaut"}, config_of(session_id)
        )
    async with offline_services.storage.db.engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM prompt_sessions WHERE id = :s"), {"s": session_id}
        )
    assert found == 0


async def test_submission_mode_offline_and_rerun_after_close(
    offline_services: Services,
) -> None:
    graph = build_graph()  # submission mode needs no checkpointer
    with use_services(offline_services):
        session_id = uuid.uuid4()
        transcript = [
            {"question": "How do you make webhook handling idempotent?", "answer": ANSWERS[1]},
            {"question": "How would you add a cache to a read-heavy API?", "answer": ANSWERS[2]},
            {"question": "Tell me about an incident you handled.", "answer": ANSWERS[3]},
        ]
        payload = {
            "session_id": str(session_id),
            "mode": "submission",
            "position": "backend",
            "transcript": transcript,
        }
        result = await graph.ainvoke(payload)
        assert result["status"] == "completed"
        assert sorted(e["turn"] for e in result["turn_evaluations"]) == [1, 2, 3]
        rows = await count_rows(offline_services, session_id)
        assert rows["turn_evals"] == 3 and rows["holistic"] == 1 and rows["ended_at"] is not None
        # An ended session is never reopened: a retry must be a new session.
        with pytest.raises(SessionEndedError):
            await graph.ainvoke(payload)
        assert (await count_rows(offline_services, session_id))["turn_evals"] == 3


async def test_submission_without_transcript_needs_a_stored_session(
    offline_services: Services,
) -> None:
    graph = build_graph()
    with use_services(offline_services):
        unknown = uuid.uuid4()
        with pytest.raises(SessionNotFoundError):
            await graph.ainvoke({"session_id": str(unknown), "mode": "submission"})
        assert (await count_rows(offline_services, unknown))["ended_at"] is None
        empty = await offline_services.storage.sessions.create_session(
            participant_id="p", position="backend", language="en", max_turns=2
        )
        with pytest.raises(InvalidInterviewInputError, match="no answered turn"):
            await graph.ainvoke({"session_id": str(empty.id), "mode": "submission"})


def test_exported_graph_has_no_checkpointer_and_numbered_nodes() -> None:
    from graph.graph import graph

    assert graph.checkpointer is None
    nodes = set(graph.get_graph().nodes)
    assert {
        "open_session",
        "generate_question",
        "intake_answer",
        "evaluate_turn",
        "evaluate_holistic_flow",
        "close_session",
    } <= nodes


def test_incomplete_error_names_each_failure() -> None:
    error = EvaluationIncompleteError(
        "s1",
        [
            {"target": "turn", "turn": 2, "error": "boom"},
            {"target": "holistic", "turn": None, "error": "timeout"},
        ],
    )
    assert "turn 2: boom" in str(error) and "holistic flow: timeout" in str(error)
