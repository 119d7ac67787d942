"""The HTTP contract: one error model everywhere, a schema that says what the server does,
/health and a database that goes away. Regression tests of issue 6 (problems 6, 7, 11).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.errors import STATUS_BY_ERROR, ErrorOut
from api.interviews import InterviewService, NoPendingQuestionError
from api.settings import Settings
from nodes.close_session import EvaluationIncompleteError
from nodes.judges.settings import JudgeKind
from storage.database import Database
from storage.embedded import ensure_database, start_embedded_server, stop_embedded_server
from storage.embeddings import Embedder
from storage.errors import SessionEndedError, SessionNotFoundError, TurnConflictError
from storage.migrate import aupgrade
from storage.services import Storage
from tests.support.http import (
    ANSWER,
    HEADERS_A,
    app_client,
    assert_error,
    table_counts,
    tenant_settings,
)

pytestmark = pytest.mark.integration

START = {"participant_id": "p-contract", "position": "backend", "max_turns": 2}


# --- problem 6: hostile text never reaches the driver -----------------------------------


@pytest.mark.parametrize(("field", "value"), [("participant_id", "a\x00b"), ("exam_id", "\x00")])
async def test_nul_in_ids_is_422_naming_the_field(
    tenant_client: httpx.AsyncClient, storage: Storage, field: str, value: str
) -> None:
    before = await table_counts(storage)
    for path, body in [
        ("/interviews", {**START, field: value}),
        (
            "/submissions",
            {**START, field: value, "transcript": [{"question": "Why?", "answer": ANSWER}]},
        ),
    ]:
        body.pop("max_turns") if path == "/submissions" else None
        assert_error(
            await tenant_client.post(path, json=body, headers=HEADERS_A), 422, field=f"body.{field}"
        )
    assert await table_counts(storage) == before


@pytest.mark.parametrize("param", ["position", "language", "text"])
async def test_nul_in_similar_query_is_422(tenant_client: httpx.AsyncClient, param: str) -> None:
    params = {"text": "caching", param: "backend\x00"}
    response = await tenant_client.get("/questions/similar", params=params, headers=HEADERS_A)
    assert_error(response, 422, field=f"query.{param}")


@pytest.mark.parametrize(
    "literal", ['"\\ud800"', '"a\\udfffb"', "NaN", "Infinity", "-Infinity", "1e999"]
)
@pytest.mark.parametrize("path", ["/interviews", "/submissions", "/interviews/{live}/answers"])
async def test_lone_surrogates_and_nan_give_a_clean_422(
    tenant_client: httpx.AsyncClient, storage: Storage, literal: str, path: str
) -> None:
    live = (await tenant_client.post("/interviews", json=START, headers=HEADERS_A)).json()
    before = await table_counts(storage)
    bodies = {
        "/interviews": f'{{"participant_id": {literal}, "position": "backend"}}',
        "/submissions": f'{{"participant_id": "p", "position": "backend", "transcript": '
        f'[{{"question": "q?", "answer": {literal}}}]}}',
        "/interviews/{live}/answers": f'{{"answer": {literal}}}',
    }
    response = await tenant_client.post(
        path.replace("{live}", live["session_id"]),
        content=bodies[path],
        headers={**HEADERS_A, "Content-Type": "application/json"},
    )
    error = assert_error(response, 422)
    assert error.field is not None and error.field.startswith("body")
    assert await table_counts(storage) == before


# --- problem 7: one error model, a schema as strict as the server -------------------------


async def test_401_422_and_unparsable_bodies_use_the_model(
    tenant_client: httpx.AsyncClient,
) -> None:
    assert_error(await tenant_client.get(f"/sessions/{uuid.uuid4()}/report"), 401)
    assert_error(
        await tenant_client.post("/interviews", json={}, headers=HEADERS_A),
        422,
        field="body.participant_id",
    )
    unparsable = await tenant_client.post(
        "/interviews",
        content=b'{"participant_id": ',
        headers={**HEADERS_A, "Content-Type": "application/json"},
    )
    error = assert_error(unparsable, 422, field="body")
    assert "not valid JSON" in error.detail


async def test_a_huge_answer_gets_a_short_error(tenant_client: httpx.AsyncClient) -> None:
    live = (await tenant_client.post("/interviews", json=START, headers=HEADERS_A)).json()
    response = await tenant_client.post(
        f"/interviews/{live['session_id']}/answers",
        json={"answer": "x" * 1_000_000},
        headers=HEADERS_A,
    )
    error = assert_error(response, 422, field="body.answer")
    assert len(response.content) < 400 and "20000" in error.detail


async def test_unexpected_errors_are_json_500_without_internals(
    tenant_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(self: InterviewService, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(InterviewService, "report", explode)
    response = await tenant_client.get(f"/sessions/{uuid.uuid4()}/report", headers=HEADERS_A)
    error = assert_error(response, 500)
    assert error.error == "InternalError" and "hunter2" not in response.text
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (SessionNotFoundError(uuid.UUID(int=1)), 404),
        (SessionEndedError(uuid.UUID(int=1)), 409),
        (TurnConflictError("turn 2 already has a different answer"), 409),
        (NoPendingQuestionError("not waiting"), 409),
        (
            EvaluationIncompleteError(
                str(uuid.UUID(int=1)), [{"target": "turn", "turn": 2, "error": "judge failed"}]
            ),
            502,
        ),
    ],
)
async def test_typed_errors_map_to_their_status_in_the_model(
    tenant_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, exc: Exception, status: int
) -> None:
    assert type(exc) in STATUS_BY_ERROR

    async def fail(self: InterviewService, *args: Any, **kwargs: Any) -> None:
        raise exc

    monkeypatch.setattr(InterviewService, "submit", fail)
    response = await tenant_client.post(f"/sessions/{uuid.uuid4()}/submit", headers=HEADERS_A)
    error = assert_error(response, status)
    assert error.error == type(exc).__name__


async def test_405_and_unknown_routes_use_the_model(tenant_client: httpx.AsyncClient) -> None:
    assert_error(await tenant_client.delete("/interviews", headers=HEADERS_A), 405)
    assert_error(await tenant_client.get("/nowhere", headers=HEADERS_A), 404)


async def test_openapi_documents_each_route_exactly(tenant_client: httpx.AsyncClient) -> None:
    spec = (await tenant_client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["ErrorOut"]["properties"]) == {"error", "detail", "field"}
    assert schemas["ErrorOut"]["required"] == ["error", "detail"]
    assert set(schemas["Position"]["enum"]) == {
        "backend",
        "data_ml",
        "devops",
        "frontend",
        "product",
    }
    assert schemas["Language"]["enum"] == ["en", "ko"]
    start = schemas["StartInterview"]["properties"]
    assert start["position"]["$ref"].endswith("/Position")
    assert start["max_turns"]["type"] == "integer"
    # `{}` is not a valid /answers body, nor an emotion without an answer, in the schema as
    # on the server.
    assert schemas["AnswerIn"]["anyOf"] == [
        {"required": ["answer"], "properties": {"answer": {"type": "string"}}},
        {
            "required": ["stop"],
            "properties": {"stop": {"const": True}, "emotion": {"type": "null"}},
        },
    ]
    # Emotion summaries: known names only, scores in [0, 1], the dominant one scored.
    emotion = schemas["EmotionIn"]
    assert emotion["additionalProperties"] is False
    assert "joy" in schemas["Emotion"]["enum"] and "happiness" not in schemas["Emotion"]["enum"]
    scores = emotion["properties"]["emotion_scores"]
    assert scores["propertyNames"]["$ref"].endswith("/Emotion") and scores["minProperties"] == 1
    assert (
        scores["additionalProperties"]["minimum"],
        scores["additionalProperties"]["maximum"],
    ) == (0, 1)
    assert "scored emotions" in emotion["properties"]["dominant_emotion"]["description"]
    for name in ("participant_id",):
        assert start[name]["pattern"] == "^[^\\x00]*$" and start[name]["not"]

    def codes(path: str, method: str) -> set[str]:
        return set(spec["paths"][path][method]["responses"])

    assert codes("/health", "get") == {"200", "431", "500", "503"}
    assert codes("/sessions/{session_id}/report", "get") == {
        "200",
        "401",
        "404",
        "422",
        "431",
        "500",
        "503",
    }
    assert codes("/interviews/{session_id}/answers", "post") == {
        "200",
        "401",
        "404",
        "409",
        "413",
        "422",
        "431",
        "500",
        "502",
        "503",
    }
    assert codes("/questions/similar", "get") == {"200", "401", "422", "431", "500", "503"}
    for path_item in spec["paths"].values():
        for operation in path_item.values():
            for code, response in operation["responses"].items():
                if int(code) >= 400:
                    content = response["content"]["application/json"]
                    assert content["schema"]["$ref"].endswith("/ErrorOut")
                    assert content["examples"], (code, operation["summary"])
                    for example in content["examples"].values():
                        ErrorOut.model_validate(example["value"])
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    assert "anyOf" not in parameter["schema"], parameter  # never "null"


def _db_start(data_dir: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "api.cli", "db", "start"],
        check=True,
        env={**os.environ, "DATA_DIR": str(data_dir)},
        capture_output=True,
    )


# --- problem 11, the HTTP parts ---------------------------------------------------------


async def test_malformed_json_without_a_key_is_401_not_422(
    tenant_client: httpx.AsyncClient,
) -> None:
    for path in ("/interviews", "/submissions", f"/interviews/{uuid.uuid4()}/answers"):
        response = await tenant_client.post(
            path, content=b"{oops", headers={"Content-Type": "application/json"}
        )
        assert_error(response, 401)


async def test_empty_answers_are_refused_by_both_routes(
    tenant_client: httpx.AsyncClient, storage: Storage
) -> None:
    live = (await tenant_client.post("/interviews", json=START, headers=HEADERS_A)).json()
    before = await table_counts(storage)
    for blank in ("", "   "):
        assert_error(
            await tenant_client.post(
                f"/interviews/{live['session_id']}/answers",
                json={"answer": blank},
                headers=HEADERS_A,
            ),
            422,
            field="body.answer",
        )
        assert_error(
            await tenant_client.post(
                "/submissions",
                json={
                    "participant_id": "p",
                    "position": "backend",
                    "transcript": [{"question": "Why?", "answer": blank}],
                },
                headers=HEADERS_A,
            ),
            422,
            field="body.transcript[0].answer",
        )
    assert await table_counts(storage) == before


async def test_max_turns_true_is_refused(
    tenant_client: httpx.AsyncClient, storage: Storage
) -> None:
    before = await table_counts(storage)
    assert_error(
        await tenant_client.post(
            "/interviews", json={**START, "max_turns": True}, headers=HEADERS_A
        ),
        422,
        field="body.max_turns",
    )
    assert await table_counts(storage) == before


async def test_headers_and_bodies_over_the_limits(storage: Storage) -> None:
    settings = tenant_settings(api_max_body_bytes=4096, api_max_header_bytes=2048)
    async with app_client(storage, settings) as (_, small):
        assert_error(await small.get("/health", headers={"X-Big": "b" * 3000}), 431)
        assert (await small.get("/health", headers={"X-Ok": "b" * 1000})).status_code == 200
        assert_error(
            await small.post(
                "/interviews", headers=HEADERS_A, json={**START, "participant_id": "p" * 5000}
            ),
            413,
        )

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as read
            yield b'{"participant_id": "'
            for _ in range(10):
                yield b"p" * 1000
            yield b'", "position": "backend"}'

        assert_error(
            await small.post(
                "/interviews",
                content=chunked(),
                headers={**HEADERS_A, "Content-Type": "application/json"},
            ),
            413,
        )


async def test_health_is_503_json_while_the_database_is_down_and_recovers(
    settings: Settings, embedder: Embedder
) -> None:
    """A server of its own, really stopped and restarted under the running app."""
    data_dir = settings.data_dir.parent / f"health-{uuid.uuid4().hex[:8]}"
    server = await asyncio.to_thread(start_embedded_server, data_dir)
    try:
        await asyncio.to_thread(ensure_database, server, "turnjudge_health")
        own = Settings(
            _env_file=None,
            judge=JudgeKind.HEURISTIC,  # type: ignore[call-arg]
            database_url=server.sqlalchemy_url("turnjudge_health"),
        )
        db = await Database.connect(own)
        try:
            await aupgrade(db.urls.sqlalchemy)
            storage = Storage.from_database(db, embedder)
            async with app_client(storage, own) as (_, client):
                healthy = await client.get("/health")
                assert healthy.status_code == 200 and healthy.json()["database"] == "ok"

                await asyncio.to_thread(stop_embedded_server, data_dir)
                down = await client.get("/health")
                error = assert_error(down, 503)
                assert error.error == "DatabaseUnavailable" and "database" in error.detail
                assert down.headers["retry-after"]
                # Any route that needs the database says the same, never a plain 500.
                report = await client.get(f"/sessions/{uuid.uuid4()}/report")
                assert assert_error(report, 503).error == "DatabaseUnavailable"

                # Started again the way an operator would: `turnjudge db start`.
                await asyncio.to_thread(_db_start, data_dir)
                for _ in range(20):  # the pool replaces dead connections by itself (checkout ping)
                    back = await client.get("/health")
                    if back.status_code == 200:
                        break
                    await asyncio.sleep(0.5)
                assert back.status_code == 200, back.text
                assert (await client.get(f"/sessions/{uuid.uuid4()}/report")).status_code == 404
        finally:
            await db.dispose()
    finally:
        await asyncio.to_thread(stop_embedded_server, data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
