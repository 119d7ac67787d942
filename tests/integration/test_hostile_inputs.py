"""Hostile requests on every route: no 5xx, the error model naming the problem, no trace.

Each request is sent through the real app (ASGI) to the real database; before and after it
the row count of every table (turnjudge's and LangGraph's checkpoint tables) is taken, and a
rejected request must leave them all unchanged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

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

LIVE = "{live}"  # replaced by the id of an interview waiting for its answer
CLOSED = "{closed}"  # replaced by the id of a closed session
UNKNOWN = str(uuid.UUID(int=0xDEADBEEF))
SQL = "'; DROP TABLE prompt_sessions; --"
TRAVERSAL = "../../../../etc/passwd"

START = {"participant_id": "p-hostile", "position": "backend", "max_turns": 2}
TURN = {"question": "How do you make webhooks idempotent?", "answer": ANSWER}
SUBMISSION = {"participant_id": "p-hostile", "position": "backend", "transcript": [TURN]}


@dataclass
class Case:
    """One hostile request and what must come back."""

    id: str
    method: str
    path: str
    json: Any = None
    content: bytes | str | None = None
    params: dict[str, Any] | None = None
    headers: dict[str, Any] = field(default_factory=lambda: dict(HEADERS_A))
    status: int | tuple[int, ...] = 422
    field: str | None = None


def _start(**changes: Any) -> dict[str, Any]:
    return {**START, **changes}


def _submission(**changes: Any) -> dict[str, Any]:
    return {**SUBMISSION, **changes}


JSON = {**HEADERS_A, "Content-Type": "application/json"}

CASES = [
    # --- authentication first ------------------------------------------------------------
    Case(
        "malformed-json-no-key",
        "POST",
        "/interviews",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
        status=401,
    ),
    Case("valid-body-no-key", "POST", "/interviews", json=START, headers={}, status=401),
    Case(
        "wrong-key",
        "POST",
        "/submissions",
        json=SUBMISSION,
        headers={"X-API-Key": "x" * 30},
        status=401,
    ),
    Case(
        "non-latin1-key",
        "GET",
        f"/sessions/{UNKNOWN}/report",
        headers={"X-API-Key": "ключ-0123456789abc".encode()},
        status=401,
    ),
    Case(
        "candidate-token-on-report",
        "GET",
        f"/sessions/{UNKNOWN}/report",
        headers={"X-Candidate-Token": "a" * 43},
        status=401,
    ),
    Case(
        "forged-candidate-token",
        "GET",
        f"/interviews/{LIVE}",
        headers={"X-Candidate-Token": "a" * 43},
        status=401,
    ),
    # --- headers and body size -----------------------------------------------------------
    Case("one-megabyte-header", "GET", "/health", headers={"X-Junk": "j" * 1_000_000}, status=431),
    Case(
        "many-headers",
        "GET",
        f"/sessions/{UNKNOWN}/report",
        headers={**HEADERS_A, **{f"X-H{i}": "v" * 100 for i in range(400)}},
        status=431,
    ),
    Case(
        "body-over-limit",
        "POST",
        "/interviews",
        json=_start(participant_id="p" * 1_100_000),
        status=413,
    ),
    Case(
        "answer-body-over-limit",
        "POST",
        f"/interviews/{LIVE}/answers",
        json={"answer": "a" * 2_000_000},
        status=413,
    ),
    # --- POST /interviews ----------------------------------------------------------------
    Case("start-empty-object", "POST", "/interviews", json={}, field="body.participant_id"),
    Case(
        "start-nul-participant",
        "POST",
        "/interviews",
        json=_start(participant_id="a\x00b"),
        field="body.participant_id",
    ),
    Case(
        "start-nul-exam", "POST", "/interviews", json=_start(exam_id="\x00"), field="body.exam_id"
    ),
    Case(
        "start-surrogate-participant",
        "POST",
        "/interviews",
        content='{"participant_id": "\\ud800", "position": "backend"}',
        headers=JSON,
        field="body.participant_id",
    ),
    Case(
        "start-surrogate-exam",
        "POST",
        "/interviews",
        content='{"participant_id": "p", "position": "backend", "exam_id": "x\\udfffy"}',
        headers=JSON,
        field="body.exam_id",
    ),
    Case(
        "start-blank-participant",
        "POST",
        "/interviews",
        json=_start(participant_id="  \t"),
        field="body.participant_id",
    ),
    Case(
        "start-long-participant",
        "POST",
        "/interviews",
        json=_start(participant_id="p" * 201),
        field="body.participant_id",
    ),
    Case(
        "start-number-participant",
        "POST",
        "/interviews",
        json=_start(participant_id=123),
        field="body.participant_id",
    ),
    Case(
        "start-unknown-position",
        "POST",
        "/interviews",
        json=_start(position="astronaut"),
        field="body.position",
    ),
    Case(
        "start-sql-position",
        "POST",
        "/interviews",
        json=_start(position=SQL),
        field="body.position",
    ),
    Case(
        "start-nul-position",
        "POST",
        "/interviews",
        json=_start(position="backend\x00"),
        field="body.position",
    ),
    Case(
        "start-case-position",
        "POST",
        "/interviews",
        json=_start(position="Backend"),
        field="body.position",
    ),
    Case(
        "start-unknown-language",
        "POST",
        "/interviews",
        json=_start(language="fr"),
        field="body.language",
    ),
    Case(
        "start-max-turns-true",
        "POST",
        "/interviews",
        json=_start(max_turns=True),
        field="body.max_turns",
    ),
    Case(
        "start-max-turns-string",
        "POST",
        "/interviews",
        json=_start(max_turns="5"),
        field="body.max_turns",
    ),
    Case(
        "start-max-turns-fraction",
        "POST",
        "/interviews",
        json=_start(max_turns=2.5),
        field="body.max_turns",
    ),
    Case(
        "start-max-turns-zero",
        "POST",
        "/interviews",
        json=_start(max_turns=0),
        field="body.max_turns",
    ),
    Case(
        "start-max-turns-31",
        "POST",
        "/interviews",
        json=_start(max_turns=31),
        field="body.max_turns",
    ),
    Case(
        "start-max-turns-nan",
        "POST",
        "/interviews",
        content='{"participant_id": "p", "position": "backend", "max_turns": NaN}',
        headers=JSON,
        field="body",
    ),
    Case(
        "start-max-turns-infinity",
        "POST",
        "/interviews",
        content='{"participant_id": "p", "position": "backend", "max_turns": Infinity}',
        headers=JSON,
        field="body",
    ),
    Case(
        "start-max-turns-minus-infinity",
        "POST",
        "/interviews",
        content='{"participant_id": "p", "position": "backend", "max_turns": -Infinity}',
        headers=JSON,
        field="body",
    ),
    Case(
        "start-max-turns-overflow",
        "POST",
        "/interviews",
        content='{"participant_id": "p", "position": "backend", "max_turns": 1e999}',
        headers=JSON,
        field="body",
    ),
    Case(
        "start-max-turns-huge-int",
        "POST",
        "/interviews",
        content='{"participant_id": "p", "position": "backend", "max_turns": ' + "9" * 5000 + "}",
        headers=JSON,
        field="body",
    ),
    Case("start-extra-field", "POST", "/interviews", json=_start(admin=True), field="body.admin"),
    Case("start-array-body", "POST", "/interviews", json=[START], field="body"),
    Case("start-null-body", "POST", "/interviews", content="null", headers=JSON, field="body"),
    Case("start-string-body", "POST", "/interviews", json="backend", field="body"),
    Case("start-empty-body", "POST", "/interviews", content=b"", headers=JSON, field="body"),
    Case(
        "start-truncated-json",
        "POST",
        "/interviews",
        content='{"participant_id": "p", ',
        headers=JSON,
        field="body",
    ),
    Case(
        "start-text-plain",
        "POST",
        "/interviews",
        content=json.dumps(START),
        headers={**HEADERS_A, "Content-Type": "text/plain"},
        field="body",
    ),
    Case(
        "start-form",
        "POST",
        "/interviews",
        content="participant_id=p&position=backend",
        headers={**HEADERS_A, "Content-Type": "application/x-www-form-urlencoded"},
        field="body",
    ),
    Case(
        "start-invalid-utf8",
        "POST",
        "/interviews",
        content=b'{"participant_id": "\xff\xfe", "position": "backend"}',
        headers=JSON,
        field="body",
    ),
    Case(
        "start-utf8-bom",
        "POST",
        "/interviews",
        content=b"\xef\xbb\xbf" + json.dumps(START).encode(),
        headers=JSON,
        field="body",
    ),
    Case(
        "start-deep-nesting",
        "POST",
        "/interviews",
        content="[" * 100_000 + "]" * 100_000,
        headers=JSON,
        field="body",
    ),
    Case(
        "start-deep-nesting-in-field",
        "POST",
        "/interviews",
        content='{"participant_id": "p", "position": "backend", "x": '
        + "[" * 500
        + "]" * 500
        + "}",
        headers=JSON,
        field="body.x",
    ),
    Case("start-wrong-method", "DELETE", "/interviews", status=405),
    # --- GET /interviews/{id} --------------------------------------------------------------
    Case("get-non-uuid", "GET", "/interviews/not-a-uuid", field="path.session_id"),
    Case("get-sql-id", "GET", f"/interviews/{SQL}", field="path.session_id"),
    Case("get-nul-id", "GET", "/interviews/%00", field="path.session_id"),
    Case("get-unknown", "GET", f"/interviews/{UNKNOWN}", status=404),
    Case("get-traversal", "GET", f"/interviews/{TRAVERSAL}", status=(404, 422)),
    # --- POST /interviews/{id}/answers -----------------------------------------------------
    Case(
        "answer-empty-object", "POST", f"/interviews/{LIVE}/answers", json={}, field="body.answer"
    ),
    Case(
        "answer-stop-false-only",
        "POST",
        f"/interviews/{LIVE}/answers",
        json={"stop": False},
        field="body.answer",
    ),
    Case(
        "answer-empty-string",
        "POST",
        f"/interviews/{LIVE}/answers",
        json={"answer": ""},
        field="body.answer",
    ),
    Case(
        "answer-blank",
        "POST",
        f"/interviews/{LIVE}/answers",
        json={"answer": " \n\t "},
        field="body.answer",
    ),
    Case(
        "answer-nul",
        "POST",
        f"/interviews/{LIVE}/answers",
        json={"answer": "a\x00b"},
        field="body.answer",
    ),
    Case(
        "answer-nul-with-stop",
        "POST",
        f"/interviews/{LIVE}/answers",
        json={"answer": "a\x00b", "stop": True},
        field="body.answer",
    ),
    Case(
        "answer-lone-surrogate",
        "POST",
        f"/interviews/{LIVE}/answers",
        content='{"answer": "\\ud800"}',
        headers=JSON,
        field="body.answer",
    ),
    Case(
        "answer-number",
        "POST",
        f"/interviews/{LIVE}/answers",
        json={"answer": 42},
        field="body.answer",
    ),
    Case(
        "answer-null",
        "POST",
        f"/interviews/{LIVE}/answers",
        json={"answer": None},
        field="body.answer",
    ),
    Case(
        "answer-too-long",
        "POST",
        f"/interviews/{LIVE}/answers",
        json={"answer": "x" * 20_001},
        field="body.answer",
    ),
    Case(
        "answer-stop-string",
        "POST",
        f"/interviews/{LIVE}/answers",
        json={"answer": "ok", "stop": "yes"},
        field="body.stop",
    ),
    Case(
        "answer-stop-one",
        "POST",
        f"/interviews/{LIVE}/answers",
        json={"answer": "ok", "stop": 1},
        field="body.stop",
    ),
    Case(
        "answer-extra-field",
        "POST",
        f"/interviews/{LIVE}/answers",
        json={"answer": "ok", "turn": 0},
        field="body.turn",
    ),
    Case(
        "answer-nan",
        "POST",
        f"/interviews/{LIVE}/answers",
        content='{"answer": NaN}',
        headers=JSON,
        field="body",
    ),
    Case(
        "answer-non-uuid",
        "POST",
        "/interviews/123/answers",
        json={"answer": "ok"},
        field="path.session_id",
    ),
    Case(
        "answer-traversal",
        "POST",
        "/interviews/..%2F..%2Fetc%2Fpasswd/answers",
        json={"answer": "ok"},
        status=(404, 422),
    ),
    Case(
        "answer-unknown-session",
        "POST",
        f"/interviews/{UNKNOWN}/answers",
        json={"answer": "ok"},
        status=404,
    ),
    Case(
        "answer-closed-session",
        "POST",
        f"/interviews/{CLOSED}/answers",
        json={"answer": "ok"},
        status=409,
    ),
    # --- POST /sessions/{id}/submit ------------------------------------------------------
    Case(
        "submit-bad-bool",
        "POST",
        f"/sessions/{UNKNOWN}/submit",
        params={"reevaluate": "maybe"},
        field="query.reevaluate",
    ),
    Case("submit-non-uuid", "POST", "/sessions/1%3D1/submit", field="path.session_id"),
    Case("submit-unknown", "POST", f"/sessions/{UNKNOWN}/submit", status=404),
    # --- POST /submissions -----------------------------------------------------------------
    Case(
        "submission-empty-transcript",
        "POST",
        "/submissions",
        json=_submission(transcript=[]),
        field="body.transcript",
    ),
    Case(
        "submission-10000-turns",
        "POST",
        "/submissions",
        json=_submission(transcript=[{"question": "q", "answer": "a"}] * 10_000),
        field="body.transcript",
    ),
    Case(
        "submission-empty-answer",
        "POST",
        "/submissions",
        json=_submission(transcript=[TURN, {"question": "q", "answer": ""}]),
        field="body.transcript[1].answer",
    ),
    Case(
        "submission-nul-question",
        "POST",
        "/submissions",
        json=_submission(transcript=[TURN, TURN, {"question": "q\x00", "answer": "a"}]),
        field="body.transcript[2].question",
    ),
    Case(
        "submission-surrogate-answer",
        "POST",
        "/submissions",
        content=json.dumps(SUBMISSION).replace(ANSWER, "\\udc00"),
        headers=JSON,
        field="body.transcript[0].answer",
    ),
    Case(
        "submission-missing-answer",
        "POST",
        "/submissions",
        json=_submission(transcript=[{"question": "q"}]),
        field="body.transcript[0].answer",
    ),
    Case(
        "submission-turn-zero",
        "POST",
        "/submissions",
        json=_submission(transcript=[{**TURN, "turn": 0}]),
        field="body.transcript[0].turn",
    ),
    Case(
        "submission-duplicate-turns",
        "POST",
        "/submissions",
        json=_submission(transcript=[{**TURN, "turn": 1}, {**TURN, "turn": 1}]),
        field="body.transcript[0].turn",
    ),
    Case(
        "submission-transcript-object",
        "POST",
        "/submissions",
        json=_submission(transcript={"1": TURN}),
        field="body.transcript",
    ),
    Case(
        "submission-bad-session-id",
        "POST",
        "/submissions",
        json=_submission(session_id=TRAVERSAL),
        field="body.session_id",
    ),
    Case(
        "submission-reevaluate-string",
        "POST",
        "/submissions",
        json=_submission(reevaluate="true"),
        field="body.reevaluate",
    ),
    Case(
        "submission-nul-exam",
        "POST",
        "/submissions",
        json=_submission(exam_id="e\x00"),
        field="body.exam_id",
    ),
    Case(
        "submission-sql-language",
        "POST",
        "/submissions",
        json=_submission(language=SQL),
        field="body.language",
    ),
    Case(
        "submission-huge-question",
        "POST",
        "/submissions",
        json=_submission(transcript=[{"question": "q" * 5001, "answer": "a"}]),
        field="body.transcript[0].question",
    ),
    # --- reports and evaluations -----------------------------------------------------------
    Case("report-non-uuid", "GET", "/sessions/abc/report", field="path.session_id"),
    Case("report-unknown", "GET", f"/sessions/{UNKNOWN}/report", status=404),
    Case(
        "evaluations-bad-type",
        "GET",
        f"/sessions/{UNKNOWN}/evaluations",
        params={"evaluation_type": "BOGUS"},
        field="query.evaluation_type",
    ),
    Case("evaluations-unknown", "GET", f"/sessions/{UNKNOWN}/evaluations", status=404),
    # --- GET /questions/similar ------------------------------------------------------------
    Case("similar-no-text", "GET", "/questions/similar", field="query.text"),
    Case(
        "similar-nul-text",
        "GET",
        "/questions/similar",
        params={"text": "a\x00b"},
        field="query.text",
    ),
    Case(
        "similar-blank-text",
        "GET",
        "/questions/similar",
        params={"text": "   "},
        field="query.text",
    ),
    Case(
        "similar-nul-position",
        "GET",
        "/questions/similar",
        params={"text": "cache", "position": "backend\x00"},
        field="query.position",
    ),
    Case(
        "similar-nul-language",
        "GET",
        "/questions/similar",
        params={"text": "cache", "language": "\x00"},
        field="query.language",
    ),
    Case(
        "similar-sql-position",
        "GET",
        "/questions/similar",
        params={"text": "cache", "position": SQL},
        field="query.position",
    ),
    Case(
        "similar-k-zero",
        "GET",
        "/questions/similar",
        params={"text": "cache", "k": 0},
        field="query.k",
    ),
    Case(
        "similar-k-huge",
        "GET",
        "/questions/similar",
        params={"text": "cache", "k": 10**30},
        field="query.k",
    ),
    Case(
        "similar-long-text",
        "GET",
        "/questions/similar",
        params={"text": "t" * 2001},
        field="query.text",
    ),
    Case("similar-sql-text", "GET", "/questions/similar", params={"text": SQL}, status=200),
    # --- routing -----------------------------------------------------------------------------
    Case("unknown-route", "GET", "/admin", status=404),
    Case("traversal-route", "GET", "/%2e%2e/%2e%2e/etc/passwd", status=404),
    Case("health-wrong-method", "PUT", "/health", status=405),
]


def test_the_suite_is_large_enough() -> None:
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.fixture(scope="module")
async def hostile(storage: Storage) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """A client, a live interview waiting for its first answer and a closed session."""
    async with app_client(storage, tenant_settings()) as (_, client):
        live = await client.post("/interviews", json=START, headers=HEADERS_A)
        assert live.status_code == 201, live.text
        closed = await client.post("/submissions", json=SUBMISSION, headers=HEADERS_A)
        assert closed.status_code == 200, closed.text
        ids = {"live": live.json()["session_id"], "closed": closed.json()["session_id"]}
        yield client, ids


def _fill(text: str, ids: dict[str, str]) -> str:
    return text.replace(LIVE, ids["live"]).replace(CLOSED, ids["closed"])


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_hostile_request(
    hostile: tuple[httpx.AsyncClient, dict[str, str]], storage: Storage, case: Case
) -> None:
    client, ids = hostile
    before = await table_counts(storage)
    response = await client.request(
        case.method,
        _fill(case.path, ids),
        json=case.json,
        content=case.content,
        params=case.params,
        headers=case.headers,
    )
    expected = case.status if isinstance(case.status, tuple) else (case.status,)
    assert response.status_code in expected, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert_error(response, field=case.field)
    assert await table_counts(storage) == before

    if "{live}" in case.path:
        # The interview is untouched: still waiting for the same first answer.
        step = await client.get(f"/interviews/{ids['live']}", headers=HEADERS_A)
        assert step.status_code == 200 and step.json()["status"] == "awaiting_answer"
        assert step.json()["question"]["turn"] == 1
