"""Runs over HTTP: `run` and `tags` on the submission and interview requests.

The OpenAPI schema of the tags says exactly what the server accepts (schemathesis checks it
both ways in test_schemathesis.py; here the edge cases are checked against the facade's own
rules directly), a run's session re-submitted returns the stored report, and the run and
tags appear in the report.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import pytest
from sqlalchemy import text

from api.settings import Settings
from api.validation import InvalidRequestError, check_run
from storage.services import Storage
from tests.support.http import app_client

pytestmark = pytest.mark.integration

ANSWER = (
    "Idempotency keys with a unique index and INSERT ON CONFLICT: a retried webhook "
    "returns the first charge; duplicates went from 40 a month to zero."
)
TAGS = {"cohort": "2026-q4", "source": "campus fair"}


@pytest.fixture
async def client(storage: Storage, offline_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(storage, offline_settings) as (_, http):
        yield http


async def sessions_in_run(storage: Storage, run: str) -> int:
    async with storage.db.engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM prompt_sessions WHERE metadata->>'run' = :r"), {"r": run}
        )
    return int(count or 0)


async def test_a_run_resubmitted_returns_the_stored_report_with_its_tags(
    client: httpx.AsyncClient, storage: Storage
) -> None:
    run = f"http-run-{uuid.uuid4()}"
    body = {
        "participant_id": "p-run",
        "position": "backend",
        "session_id": str(uuid.uuid4()),
        "run": run,
        "tags": TAGS,
        "transcript": [
            {"question": "How do you make payment webhooks idempotent?", "answer": ANSWER}
        ],
    }
    first = await client.post("/submissions", json=body)
    assert first.status_code == 200, first.text
    report = first.json()
    assert report["run"] == run and report["tags"] == TAGS and report["status"] == "completed"
    stored = (await client.get(f"/sessions/{body['session_id']}/evaluations")).json()

    again = await client.post("/submissions", json=body)
    assert again.status_code == 200, again.text
    assert again.json() == report
    assert (await client.get(f"/sessions/{body['session_id']}/evaluations")).json() == stored
    assert await sessions_in_run(storage, run) == 1
    read = (await client.get(f"/sessions/{body['session_id']}/report")).json()
    assert read["run"] == run and read["tags"] == TAGS


async def test_an_interview_carries_its_run_and_tags(client: httpx.AsyncClient) -> None:
    started = await client.post(
        "/interviews",
        json={
            "participant_id": "p-run-i",
            "position": "devops",
            "max_turns": 1,
            "run": "http-interviews",
            "tags": {"cohort": "2026-q4"},
        },
    )
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    step = await client.post(f"/interviews/{session_id}/answers", json={"answer": ANSWER})
    assert step.json()["status"] == "completed"
    report = (await client.get(f"/sessions/{session_id}/report")).json()
    assert report["run"] == "http-interviews" and report["tags"] == {"cohort": "2026-q4"}


BAD_RUNS_AND_TAGS: list[tuple[dict[str, Any], str]] = [
    ({"run": ""}, "run"),
    ({"run": "   "}, "run"),
    ({"run": "r" * 201}, "run"),
    ({"tags": {" ": "x"}}, "tags"),
    ({"tags": {"k" * 65: "x"}}, "tags"),
    ({"tags": {"a\u0000b": "x"}}, "tags"),
    ({"tags": {"cohort": ""}}, "tags"),
    ({"tags": {"cohort": "v" * 201}}, "tags"),
    ({"tags": {"cohort": 3}}, "tags"),
    ({"tags": ["cohort"]}, "tags"),
    ({"tags": {f"k{i}": "v" for i in range(21)}}, "tags"),
]


@pytest.mark.parametrize(("extra", "field"), BAD_RUNS_AND_TAGS)
async def test_bad_runs_and_tags_are_refused_and_store_nothing(
    client: httpx.AsyncClient, storage: Storage, extra: dict[str, Any], field: str
) -> None:
    async with storage.db.engine.connect() as conn:
        before = await conn.scalar(text("SELECT count(*) FROM prompt_sessions"))
    body = {
        "participant_id": "p-bad-run",
        "position": "backend",
        "transcript": [{"question": "q?", "answer": ANSWER}],
        **extra,
    }
    response = await client.post("/submissions", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"].startswith(f"body.{field}"), response.json()
    async with storage.db.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM prompt_sessions")) == before


async def test_the_documented_tags_schema_is_exactly_what_the_facade_accepts(
    client: httpx.AsyncClient,
) -> None:
    components = (await client.get("/openapi.json")).json()["components"]["schemas"]
    for model in ("SubmitTranscript", "StartInterview"):
        (schema,) = [
            s for s in components[model]["properties"]["tags"]["anyOf"] if s.get("type") == "object"
        ]
        good = [
            {},
            {"k": "v"},
            {"k" * 64: "v" * 200},
            {"cohort": " "},
            {f"k{i}": "v" for i in range(20)},
            {"팀": "백엔드"},
        ]
        bad = [case["tags"] for case, _ in BAD_RUNS_AND_TAGS if "tags" in case]
        for tags in good + bad:
            documented = jsonschema.Draft202012Validator(schema).is_valid(tags)
            try:
                check_run(None, tags)
                accepted = True
            except InvalidRequestError:
                accepted = False
            assert documented == accepted, (model, tags, documented, accepted)
        assert documented is False  # the last case (21 tags) is refused by both
