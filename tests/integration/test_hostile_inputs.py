"""Hostile requests on every route: no 5xx, the error model naming the problem, no trace.

Each request is sent through the real app (ASGI) to the real database; before and after it
the row count of every table (turnjudge's and LangGraph's checkpoint tables) is taken, and a
rejected request must leave them all unchanged.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import pytest

from storage.services import Storage
from tests.support.http import (
    ANSWER,
    HEADERS_A,
    assert_error,
    table_counts,
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

# The cases of the routes with many, each named by its id and what it sends.
_start_case = partial(Case, method="POST", path="/interviews")
_answer_case = partial(Case, method="POST", path=f"/interviews/{LIVE}/answers")
_submission_case = partial(Case, method="POST", path="/submissions")
_similar_case = partial(Case, method="GET", path="/questions/similar")

CASES = [
    # --- authentication first ------------------------------------------------------------
    _start_case(
        "malformed-json-no-key",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
        status=401,
    ),
    _start_case("valid-body-no-key", json=START, headers={}, status=401),
    _submission_case("wrong-key", json=SUBMISSION, headers={"X-API-Key": "x" * 30}, status=401),
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
    _start_case("body-over-limit", json=_start(participant_id="p" * 1_100_000), status=413),
    _answer_case("answer-body-over-limit", json={"answer": "a" * 2_000_000}, status=413),
    # --- POST /interviews ----------------------------------------------------------------
    _start_case("start-empty-object", json={}, field="body.participant_id"),
    _start_case(
        "start-nul-participant", json=_start(participant_id="a\x00b"), field="body.participant_id"
    ),
    _start_case("start-nul-exam", json=_start(exam_id="\x00"), field="body.exam_id"),
    _start_case(
        "start-surrogate-participant",
        content='{"participant_id": "\\ud800", "position": "backend"}',
        headers=JSON,
        field="body.participant_id",
    ),
    _start_case(
        "start-surrogate-exam",
        content='{"participant_id": "p", "position": "backend", "exam_id": "x\\udfffy"}',
        headers=JSON,
        field="body.exam_id",
    ),
    _start_case(
        "start-blank-participant", json=_start(participant_id="  \t"), field="body.participant_id"
    ),
    _start_case(
        "start-long-participant", json=_start(participant_id="p" * 201), field="body.participant_id"
    ),
    _start_case(
        "start-number-participant", json=_start(participant_id=123), field="body.participant_id"
    ),
    _start_case("start-unknown-position", json=_start(position="astronaut"), field="body.position"),
    _start_case("start-sql-position", json=_start(position=SQL), field="body.position"),
    _start_case("start-nul-position", json=_start(position="backend\x00"), field="body.position"),
    _start_case("start-case-position", json=_start(position="Backend"), field="body.position"),
    _start_case("start-unknown-language", json=_start(language="fr"), field="body.language"),
    _start_case("start-max-turns-true", json=_start(max_turns=True), field="body.max_turns"),
    _start_case("start-max-turns-string", json=_start(max_turns="5"), field="body.max_turns"),
    _start_case("start-max-turns-fraction", json=_start(max_turns=2.5), field="body.max_turns"),
    _start_case("start-max-turns-zero", json=_start(max_turns=0), field="body.max_turns"),
    _start_case("start-max-turns-31", json=_start(max_turns=31), field="body.max_turns"),
    _start_case(
        "start-max-turns-nan",
        content='{"participant_id": "p", "position": "backend", "max_turns": NaN}',
        headers=JSON,
        field="body",
    ),
    _start_case(
        "start-max-turns-infinity",
        content='{"participant_id": "p", "position": "backend", "max_turns": Infinity}',
        headers=JSON,
        field="body",
    ),
    _start_case(
        "start-max-turns-minus-infinity",
        content='{"participant_id": "p", "position": "backend", "max_turns": -Infinity}',
        headers=JSON,
        field="body",
    ),
    _start_case(
        "start-max-turns-overflow",
        content='{"participant_id": "p", "position": "backend", "max_turns": 1e999}',
        headers=JSON,
        field="body",
    ),
    _start_case(
        "start-max-turns-huge-int",
        content='{"participant_id": "p", "position": "backend", "max_turns": ' + "9" * 5000 + "}",
        headers=JSON,
        field="body",
    ),
    _start_case("start-extra-field", json=_start(admin=True), field="body.admin"),
    _start_case("start-array-body", json=[START], field="body"),
    _start_case("start-null-body", content="null", headers=JSON, field="body"),
    _start_case("start-string-body", json="backend", field="body"),
    _start_case("start-empty-body", content=b"", headers=JSON, field="body"),
    _start_case(
        "start-truncated-json", content='{"participant_id": "p", ', headers=JSON, field="body"
    ),
    _start_case(
        "start-text-plain",
        content=json.dumps(START),
        headers={**HEADERS_A, "Content-Type": "text/plain"},
        field="body",
    ),
    _start_case(
        "start-form",
        content="participant_id=p&position=backend",
        headers={**HEADERS_A, "Content-Type": "application/x-www-form-urlencoded"},
        field="body",
    ),
    _start_case(
        "start-invalid-utf8",
        content=b'{"participant_id": "\xff\xfe", "position": "backend"}',
        headers=JSON,
        field="body",
    ),
    _start_case(
        "start-utf8-bom",
        content=b"\xef\xbb\xbf" + json.dumps(START).encode(),
        headers=JSON,
        field="body",
    ),
    _start_case(
        "start-deep-nesting", content="[" * 100_000 + "]" * 100_000, headers=JSON, field="body"
    ),
    _start_case(
        "start-deep-nesting-in-field",
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
    _answer_case("answer-empty-object", json={}, field="body.answer"),
    _answer_case("answer-stop-false-only", json={"stop": False}, field="body.answer"),
    _answer_case("answer-empty-string", json={"answer": ""}, field="body.answer"),
    _answer_case("answer-blank", json={"answer": " \n\t "}, field="body.answer"),
    _answer_case("answer-nul", json={"answer": "a\x00b"}, field="body.answer"),
    _answer_case(
        "answer-nul-with-stop", json={"answer": "a\x00b", "stop": True}, field="body.answer"
    ),
    _answer_case(
        "answer-lone-surrogate", content='{"answer": "\\ud800"}', headers=JSON, field="body.answer"
    ),
    _answer_case("answer-number", json={"answer": 42}, field="body.answer"),
    _answer_case("answer-null", json={"answer": None}, field="body.answer"),
    _answer_case("answer-too-long", json={"answer": "x" * 20_001}, field="body.answer"),
    _answer_case("answer-stop-string", json={"answer": "ok", "stop": "yes"}, field="body.stop"),
    _answer_case("answer-stop-one", json={"answer": "ok", "stop": 1}, field="body.stop"),
    _answer_case("answer-extra-field", json={"answer": "ok", "turn": 0}, field="body.turn"),
    _answer_case("answer-nan", content='{"answer": NaN}', headers=JSON, field="body"),
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
    _submission_case(
        "submission-empty-transcript", json=_submission(transcript=[]), field="body.transcript"
    ),
    _submission_case(
        "submission-10000-turns",
        json=_submission(transcript=[{"question": "q", "answer": "a"}] * 10_000),
        field="body.transcript",
    ),
    _submission_case(
        "submission-empty-answer",
        json=_submission(transcript=[TURN, {"question": "q", "answer": ""}]),
        field="body.transcript[1].answer",
    ),
    _submission_case(
        "submission-nul-question",
        json=_submission(transcript=[TURN, TURN, {"question": "q\x00", "answer": "a"}]),
        field="body.transcript[2].question",
    ),
    _submission_case(
        "submission-surrogate-answer",
        content=json.dumps(SUBMISSION).replace(ANSWER, "\\udc00"),
        headers=JSON,
        field="body.transcript[0].answer",
    ),
    _submission_case(
        "submission-missing-answer",
        json=_submission(transcript=[{"question": "q"}]),
        field="body.transcript[0].answer",
    ),
    _submission_case(
        "submission-turn-zero",
        json=_submission(transcript=[{**TURN, "turn": 0}]),
        field="body.transcript[0].turn",
    ),
    _submission_case(
        "submission-duplicate-turns",
        json=_submission(transcript=[{**TURN, "turn": 1}, {**TURN, "turn": 1}]),
        field="body.transcript[0].turn",
    ),
    _submission_case(
        "submission-transcript-object",
        json=_submission(transcript={"1": TURN}),
        field="body.transcript",
    ),
    _submission_case(
        "submission-bad-session-id", json=_submission(session_id=TRAVERSAL), field="body.session_id"
    ),
    _submission_case(
        "submission-reevaluate-string", json=_submission(reevaluate="true"), field="body.reevaluate"
    ),
    _submission_case(
        "submission-nul-exam", json=_submission(exam_id="e\x00"), field="body.exam_id"
    ),
    _submission_case(
        "submission-sql-language", json=_submission(language=SQL), field="body.language"
    ),
    _submission_case(
        "submission-huge-question",
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
    _similar_case("similar-no-text", field="query.text"),
    _similar_case("similar-nul-text", params={"text": "a\x00b"}, field="query.text"),
    _similar_case("similar-blank-text", params={"text": "   "}, field="query.text"),
    _similar_case(
        "similar-nul-position",
        params={"text": "cache", "position": "backend\x00"},
        field="query.position",
    ),
    _similar_case(
        "similar-nul-language", params={"text": "cache", "language": "\x00"}, field="query.language"
    ),
    _similar_case(
        "similar-sql-position", params={"text": "cache", "position": SQL}, field="query.position"
    ),
    _similar_case("similar-k-zero", params={"text": "cache", "k": 0}, field="query.k"),
    _similar_case("similar-k-huge", params={"text": "cache", "k": 10**30}, field="query.k"),
    _similar_case("similar-long-text", params={"text": "t" * 2001}, field="query.text"),
    _similar_case("similar-sql-text", params={"text": SQL}, status=200),
    # --- routing -----------------------------------------------------------------------------
    Case("unknown-route", "GET", "/admin", status=404),
    Case("traversal-route", "GET", "/%2e%2e/%2e%2e/etc/passwd", status=404),
    Case("health-wrong-method", "PUT", "/health", status=405),
]


def test_the_suite_is_large_enough() -> None:
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.fixture(scope="module")
async def hostile(
    tenant_client: httpx.AsyncClient,
) -> tuple[httpx.AsyncClient, dict[str, str]]:
    """A client, a live interview waiting for its first answer and a closed session."""
    live = await tenant_client.post("/interviews", json=START, headers=HEADERS_A)
    assert live.status_code == 201, live.text
    closed = await tenant_client.post("/submissions", json=SUBMISSION, headers=HEADERS_A)
    assert closed.status_code == 200, closed.text
    ids = {"live": live.json()["session_id"], "closed": closed.json()["session_id"]}
    return tenant_client, ids


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
