"""Concurrent submits of one session judge each item once and all get the same report.

Problem 5 of issue 6: 50 identical concurrent submits (both routes, mixed) against the LLM
judge served by the local OpenAI-compatible stub, which counts the requests it receives.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from api.settings import Settings
from nodes.judges.settings import JudgeKind
from storage.services import Storage
from storage.sessions import TranscriptTurn
from tests.support.http import app_client
from tests.support.openai_stub import OpenAIStub

pytestmark = pytest.mark.integration

TRANSCRIPT = [
    (
        "How do you make payment webhooks idempotent?",
        "Idempotency keys stored with a unique index; INSERT ON CONFLICT returns the first result.",
    ),
    (
        "How do you find a slow query?",
        "pg_stat_statements for the top offenders, then EXPLAIN ANALYZE and a covering index.",
    ),
    (
        "What do you monitor in production?",
        "p95 latency, error rate and saturation, with alerts on burn rate of the SLO.",
    ),
]


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub(latency_s=0.2) as server:
        yield server


@pytest.fixture
async def client(storage: Storage, stub: OpenAIStub) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(judge=JudgeKind.LLM, openai_base_url=stub.base_url, llm_backoff_s=0.01)
    async with app_client(storage, settings) as (_, http):
        yield http


async def test_fifty_mixed_concurrent_submits_evaluate_once(
    client: httpx.AsyncClient, storage: Storage, stub: OpenAIStub
) -> None:
    # A session whose transcript is stored but not evaluated yet (e.g. its first submission
    # died before judging), so both routes apply to it.
    session = await storage.sessions.create_session(
        participant_id="p-flight",
        position="backend",
        language="en",
        max_turns=3,
    )
    await storage.sessions.save_transcript(
        session.id, [TranscriptTurn(q, a) for q, a in TRANSCRIPT]
    )
    body = {
        "participant_id": "p-flight",
        "position": "backend",
        "language": "en",
        "session_id": str(session.id),
        "transcript": [{"question": q, "answer": a} for q, a in TRANSCRIPT],
    }
    stub.reset_stats()

    async def one(index: int) -> httpx.Response:
        if index % 2:
            return await client.post(f"/sessions/{session.id}/submit")
        return await client.post("/submissions", json=body)

    responses = await asyncio.gather(*(one(i) for i in range(50)))
    assert [r.status_code for r in responses] == [200] * 50, {
        r.status_code: r.text for r in responses if r.status_code != 200
    }
    reports = [r.json() for r in responses]
    assert all(report == reports[0] for report in reports)
    assert reports[0]["status"] == "completed"
    evaluations = await storage.evaluations.list_evaluations(session.id)
    assert [e.turn for e in evaluations] == [1, 2, 3, None]
    assert stub.calls == len(evaluations)  # no retries were needed: one call per evaluation
    assert all(e.created_at == e.updated_at for e in evaluations)  # never overwritten
    status = await client.get(f"/interviews/{session.id}")
    assert status.status_code == 200 and status.json()["status"] == "completed"


async def test_fifty_concurrent_submits_of_an_interview(
    client: httpx.AsyncClient, storage: Storage, stub: OpenAIStub
) -> None:
    started = (
        await client.post(
            "/interviews",
            json={"participant_id": "p-flight-2", "position": "backend", "max_turns": 3},
        )
    ).json()
    session_id = started["session_id"]
    step = await client.post(f"/interviews/{session_id}/answers", json={"answer": TRANSCRIPT[0][1]})
    assert step.status_code == 200, step.text
    evaluated_before = len(await storage.evaluations.list_evaluations(uuid.UUID(session_id)))
    stub.reset_stats()
    responses = await asyncio.gather(
        *(client.post(f"/sessions/{session_id}/submit") for _ in range(50))
    )
    assert [r.status_code for r in responses] == [200] * 50
    assert all(r.json() == responses[0].json() for r in responses)
    evaluations = await storage.evaluations.list_evaluations(uuid.UUID(session_id))
    assert [e.turn for e in evaluations] == [1, None]
    assert stub.calls == len(evaluations) - evaluated_before  # only the HOLISTIC_FLOW
    interview = (await client.get(f"/interviews/{session_id}")).json()
    assert interview["status"] == "completed" and interview["question"] is None


async def test_many_sessions_locked_at_once_do_not_starve_the_pool(
    client: httpx.AsyncClient, storage: Storage, stub: OpenAIStub
) -> None:
    """More sessions in flight than the pool has connections: each lock has its own."""
    sessions = 40  # > DB_POOL_SIZE + DB_MAX_OVERFLOW (30)
    bodies = [
        {
            "participant_id": f"p-many-{i}",
            "position": "backend",
            "session_id": str(uuid.uuid4()),
            "transcript": [
                {"question": q, "answer": f"{a} (candidate {i})"} for q, a in TRANSCRIPT
            ],
        }
        for i in range(sessions)
    ]
    stub.reset_stats()
    responses = await asyncio.gather(*(client.post("/submissions", json=b) for b in bodies))
    assert [r.status_code for r in responses] == [200] * sessions
    assert all(r.json()["status"] == "completed" for r in responses)
    assert stub.calls == sessions * (len(TRANSCRIPT) + 1)
