"""The HTTP facade against the real embedded PostgreSQL with the offline judge."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text

from api.settings import Settings
from nodes.judges.settings import JudgeKind
from storage.services import Storage
from tests.support.http import app_client

pytestmark = pytest.mark.integration

ANSWER = (
    "In my last project I built the payments API on PostgreSQL; idempotency keys with a unique "
    "index and INSERT ON CONFLICT removed duplicate charges, and p95 latency fell to 90 ms."
)


@pytest.fixture
async def client(storage: Storage, offline_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(storage, offline_settings) as (_, c):
        yield c


async def test_health_and_openapi(client: httpx.AsyncClient) -> None:
    health = (await client.get("/health")).json()
    assert health["status"] == "ok" and health["judge"] == "heuristic"
    assert health["questions"] >= 150
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/interviews/{session_id}/answers" in paths and "/submissions" in paths


async def test_interview_over_http(client: httpx.AsyncClient) -> None:
    started = await client.post(
        "/interviews", json={"participant_id": "p-http", "position": "backend", "max_turns": 2}
    )
    assert started.status_code == 201, started.text
    step = started.json()
    session_id = step["session_id"]
    assert step["status"] == "awaiting_answer" and step["question"]["turn"] == 1
    pending = (await client.get(f"/interviews/{session_id}")).json()
    assert pending["question"] == step["question"]

    step = (await client.post(f"/interviews/{session_id}/answers", json={"answer": ANSWER})).json()
    assert step["question"]["turn"] == 2 and step["last_evaluation"]["turn"] == 1
    # (A different answer: the same text again within a minute would be taken for a retry.)
    step = (
        await client.post(
            f"/interviews/{session_id}/answers",
            json={"answer": ANSWER + " We also load-tested it."},
        )
    ).json()
    assert step["status"] == "completed" and step["question"] is None
    assert step["holistic_score"] is not None

    report = (await client.get(f"/sessions/{session_id}/report")).json()
    assert report["ended_at"] is not None and len(report["turns"]) == 2
    assert all(t["evaluation"]["score"] >= 0 for t in report["turns"])
    evaluations = (await client.get(f"/sessions/{session_id}/evaluations")).json()
    assert [e["evaluation_type"] for e in evaluations] == [
        "TURN_EVAL",
        "TURN_EVAL",
        "HOLISTIC_FLOW",
    ]
    # Answering a finished interview is a conflict, not a silent no-op.
    late = await client.post(f"/interviews/{session_id}/answers", json={"answer": ANSWER})
    assert late.status_code == 409
    # Submitting a closed session is idempotent: same report.
    again = await client.post(f"/sessions/{session_id}/submit")
    assert again.status_code == 200 and again.json()["ended_at"] == report["ended_at"]


async def test_submit_transcript_is_idempotent(client: httpx.AsyncClient) -> None:
    body = {
        "participant_id": "p-sub",
        "position": "backend",
        "transcript": [
            {"question": "How do you make payment webhooks idempotent?", "answer": ANSWER},
            {"question": "What do you monitor in production?", "answer": "Latency and errors."},
        ],
    }
    first = await client.post("/submissions", json=body)
    assert first.status_code == 200, first.text
    report = first.json()
    assert report["ended_at"] is not None and report["holistic"]["score"] >= 0
    again = await client.post("/submissions", json={**body, "session_id": report["session_id"]})
    assert again.status_code == 200 and again.json() == report
    changed = {
        **body,
        "session_id": report["session_id"],
        "transcript": [{"question": "Other?", "answer": "Other."}],
    }
    conflict = await client.post("/submissions", json=changed)
    assert conflict.status_code == 409 and "ended" in conflict.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "participant_id": "p",
                "position": "astronaut",
                "transcript": [{"question": "q", "answer": "a"}],
            },
            "position",
        ),
        ({"participant_id": "p", "position": "backend", "transcript": []}, "transcript"),
        (
            {
                "participant_id": "p",
                "position": "backend",
                "language": "fr",
                "transcript": [{"question": "q", "answer": "a"}],
            },
            "language",
        ),
        (
            {
                "participant_id": "",
                "position": "backend",
                "transcript": [{"question": "q", "answer": "a"}],
            },
            "participant_id",
        ),
        (
            {"participant_id": "p", "position": "backend", "transcript": [{"question": "q"}]},
            "answer",
        ),
    ],
)
async def test_bad_submission_is_422_naming_the_field_and_stores_nothing(
    client: httpx.AsyncClient, storage: Storage, body: dict[str, object], field: str
) -> None:
    async with storage.db.engine.connect() as conn:
        before = await conn.scalar(text("SELECT count(*) FROM prompt_sessions"))
    response = await client.post("/submissions", json=body)
    assert response.status_code == 422
    assert field in response.text
    async with storage.db.engine.connect() as conn:
        after = await conn.scalar(text("SELECT count(*) FROM prompt_sessions"))
    assert after == before


async def test_errors_name_the_problem(client: httpx.AsyncClient) -> None:
    unknown = uuid.uuid4()
    missing = await client.get(f"/sessions/{unknown}/report")
    assert missing.status_code == 404 and str(unknown) in missing.json()["detail"]
    blank = await client.post(f"/interviews/{unknown}/answers", json={"answer": "   "})
    assert blank.status_code == 422 and "answer" in blank.text
    bad_id = await client.get("/sessions/not-a-uuid/report")
    assert bad_id.status_code == 422 and "session_id" in bad_id.text


async def test_similar_questions(client: httpx.AsyncClient) -> None:
    hits = (
        await client.get(
            "/questions/similar",
            params={"text": "database indexing and slow queries", "k": 3, "position": "backend"},
        )
    ).json()
    assert len(hits) == 3 and all(h["position"] == "backend" for h in hits)
    assert hits[0]["distance"] <= hits[1]["distance"] <= hits[2]["distance"]


async def test_api_keys_are_enforced(storage: Storage) -> None:
    settings = Settings(judge=JudgeKind.HEURISTIC, api_keys=[SecretStr("k" * 24)])
    async with app_client(storage, settings) as (_, client):
        assert (
            await client.get("/sessions/00000000-0000-0000-0000-000000000000/report")
        ).status_code == 401
        ok = await client.get(
            "/questions/similar", params={"text": "cache"}, headers={"X-API-Key": "k" * 24}
        )
        assert ok.status_code == 200
        assert (await client.get("/health")).status_code == 200
