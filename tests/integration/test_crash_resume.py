"""kill -9 of `turnjudge serve` at three points of an interview; the interview still ends well.

The server runs as a subprocess on a free loopback port, on the test database, with the LLM
judge and question generator served by the local OpenAI-compatible stub in this process. The
stub answers slowly (LATENCY_S), which makes the crash points deterministic without any hook
in production code: while an answer is being processed, the test polls the database for the
row that marks the crash point and kills the server while the next LLM call is in flight.

1. between answers (nothing in flight);
2. after the answer row is stored, while its TURN_EVAL is being judged (no next question);
3. after its TURN_EVAL is stored, while the next question is being generated.

After each restart `GET /interviews/{id}` continues the interview; at the end every answer
is kept and every evaluation is stored exactly once (never re-judged over a stored one).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from storage.database import DatabaseUrls
from storage.services import Storage
from tests.support.openai_stub import OpenAIStub

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LATENCY_S = 1.5
ROOT = Path(__file__).resolve().parents[2]
ANSWERS = [
    "Idempotency keys with a unique index; INSERT ON CONFLICT returns the first charge.",
    "pg_stat_statements to find it, EXPLAIN ANALYZE to see why, then a covering index.",
    "Blue-green deploys behind the load balancer with a health-checked cut-over.",
    "p95 latency, error rate and saturation, alerting on the SLO burn rate.",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One `turnjudge serve` subprocess; `kill()` is SIGKILL, nothing runs on the way out."""

    def __init__(self, database_urls: DatabaseUrls, stub: OpenAIStub) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_urls.sqlalchemy,
            "JUDGE": "llm",
            "OPENAI_BASE_URL": stub.base_url,
            "LLM_MODEL": "stub",
            "LLM_BACKOFF_S": "0.01",
            "LLM_TIMEOUT_S": "30",
            "API_KEYS": "",
        }
        self.env.pop("OPENAI_API_KEY", None)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("turnjudge serve did not become healthy")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub(latency_s=LATENCY_S) as server:
        yield server


async def wait_for(storage: Storage, query: str, params: dict[str, object]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with storage.db.engine.connect() as conn:
            if await conn.scalar(text(query), params):
                return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for: {query}")


ANSWER_STORED = (
    "SELECT answer_text IS NOT NULL FROM prompt_messages WHERE session_id = :sid AND turn = :turn"
)
EVAL_STORED = (
    "SELECT count(*) FROM prompt_evaluations WHERE session_id = :sid AND turn = :turn "
    "AND evaluation_type = 'TURN_EVAL'"
)


async def answer_in_flight(server: Server, session_id: str, answer: str) -> asyncio.Task[None]:
    async def post() -> None:
        try:
            async with httpx.AsyncClient(timeout=60) as client:
                await client.post(
                    f"{server.url}/interviews/{session_id}/answers", json={"answer": answer}
                )
        except httpx.HTTPError:
            pass  # the server is killed while this request is in flight: expected

    return asyncio.create_task(post())


async def get_step(server: Server, session_id: str) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=120) as client:
        response = await client.get(f"{server.url}/interviews/{session_id}")
    assert response.status_code == 200, response.text
    step: dict[str, object] = response.json()
    return step


async def test_kill_9_at_three_points_and_the_interview_completes(
    database_urls: DatabaseUrls, storage: Storage, stub: OpenAIStub
) -> None:
    server = Server(database_urls, stub)
    try:
        await asyncio.to_thread(server.start)
        async with httpx.AsyncClient(timeout=120) as client:
            started = (
                await client.post(
                    f"{server.url}/interviews",
                    json={"participant_id": "p-crash", "position": "backend", "max_turns": 4},
                )
            ).json()
            session_id = started["session_id"]
            sid = uuid.UUID(session_id)
            first = (
                await client.post(
                    f"{server.url}/interviews/{session_id}/answers", json={"answer": ANSWERS[0]}
                )
            ).json()
        assert first["question"]["turn"] == 2

        # 1. Between answers.
        server.kill()
        await asyncio.to_thread(server.start)
        step = await get_step(server, session_id)
        assert step["question"] == first["question"]

        # 2. After the answer row is stored, while its evaluation is in flight.
        task = await answer_in_flight(server, session_id, ANSWERS[1])
        await wait_for(storage, ANSWER_STORED, {"sid": sid, "turn": 2})
        await asyncio.sleep(0.2)
        server.kill()
        await task
        assert (
            await storage.sessions.get_transcript(sid)
            and len(await storage.sessions.get_transcript(sid)) == 2
        )  # no next question yet
        await asyncio.to_thread(server.start)
        step = await get_step(server, session_id)
        assert step["status"] == "awaiting_answer"
        assert step["question"]["turn"] == 3  # type: ignore[index]

        # 3. After the TURN_EVAL is stored, while the next question is being generated.
        task = await answer_in_flight(server, session_id, ANSWERS[2])
        await wait_for(storage, EVAL_STORED, {"sid": sid, "turn": 3})
        await asyncio.sleep(0.3)
        server.kill()
        await task
        await asyncio.to_thread(server.start)
        step = await get_step(server, session_id)
        assert step["question"]["turn"] == 4  # type: ignore[index]
        # Re-sending the answer of turn 3 (its response was lost) changes nothing.
        async with httpx.AsyncClient(timeout=120) as client:
            resent = await client.post(
                f"{server.url}/interviews/{session_id}/answers", json={"answer": ANSWERS[2]}
            )
            assert resent.status_code == 200 and resent.json()["question"]["turn"] == 4
            last = await client.post(
                f"{server.url}/interviews/{session_id}/answers", json={"answer": ANSWERS[3]}
            )
        assert last.status_code == 200 and last.json()["status"] == "completed"
    finally:
        server.stop()

    transcript = await storage.sessions.get_transcript(sid)
    assert [t.answer_text for t in transcript] == ANSWERS
    evaluations = await storage.evaluations.list_evaluations(sid)
    assert [e.turn for e in evaluations] == [1, 2, 3, 4, None]
    assert all(e.created_at == e.updated_at for e in evaluations)  # each stored once
    assert (await storage.sessions.get_session(sid)).ended_at is not None


HOLISTIC_STORED = (
    "SELECT count(*) FROM prompt_evaluations WHERE session_id = :sid "
    "AND evaluation_type = 'HOLISTIC_FLOW'"
)


def _judged(stub: OpenAIStub, since: int = 0) -> list[str]:
    """What each LLM request judged: "flow", or "turn N" (sorted)."""
    judged = []
    for body in stub.requests[since:]:
        if body["tool_choice"]["function"]["name"] == "FlowJudgement":
            judged.append("flow")
        else:
            turn = re.search(r"Interview turn (\d+)", body["messages"][-1]["content"])
            assert turn is not None
            judged.append(f"turn {turn.group(1)}")
    return sorted(judged)


async def _settled(stub: OpenAIStub, hanging: str, quiet_s: float = 2.0) -> list[str]:
    """What was judged once `hanging` was requested and no request came for `quiet_s`.

    Every other call is answered within the stub's latency, so after a quiet spell the only
    open call is the hanging one (a loaded machine only makes the spell start later).
    """
    deadline = time.monotonic() + 120
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        if len(stub.requests) != seen:
            seen, quiet_since = len(stub.requests), time.monotonic()
        elif hanging in _judged(stub) and time.monotonic() - quiet_since >= quiet_s:
            return _judged(stub)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the stub never settled with {hanging!r} open: {_judged(stub)}")


async def test_kill_9_mid_submission_and_the_resubmission_evaluates_only_what_is_missing(
    database_urls: DatabaseUrls, storage: Storage
) -> None:
    """A submission process killed mid-run: the re-submission completes it, no duplicates.

    Turn 3's judge call hangs (the stub holds it); the process is killed once the holistic
    flow is stored and every other call has been answered. The TURN_EVALs of a run are
    stored together once all are judged (one statement, `storage.turn_writes`), so none of
    the killed run's is stored; the re-submission judges the same turns again (a clear case
    the guards judge needs no LLM call) and not the stored flow.
    """
    sid = uuid.uuid4()
    body = {
        "session_id": str(sid),
        "participant_id": "p-kill-submission",
        "position": "backend",
        "transcript": [
            {
                "question": f"Question {n}: how would you scale service {n}?",
                "answer": f"{ANSWERS[n % len(ANSWERS)]} (service {n})",
            }
            for n in range(1, 7)
        ],
    }
    with OpenAIStub(latency_s=0.05) as stub:
        stub.timeout_sleep_s = 120.0
        stub.add_fault("timeout", times=1, match="Interview turn 3")
        server = Server(database_urls, stub)
        try:
            await asyncio.to_thread(server.start)

            async def submit() -> None:
                try:
                    async with httpx.AsyncClient(timeout=120) as client:
                        await client.post(f"{server.url}/submissions", json=body)
                except httpx.HTTPError:
                    pass  # killed while the request is in flight: expected

            task = asyncio.create_task(submit())
            await wait_for(storage, HOLISTIC_STORED, {"sid": sid})
            judged = await _settled(stub, hanging="turn 3")
            assert "flow" in judged and len(judged) >= 3
            server.kill()
            await task
            assert (await storage.sessions.get_session(sid)).ended_at is None
            before = len(stub.requests)

            await asyncio.to_thread(server.start)
            async with httpx.AsyncClient(timeout=120) as client:
                again = await client.post(f"{server.url}/submissions", json=body)
            assert again.status_code == 200, again.text
            assert again.json()["status"] == "completed"
            # Only what was missing: the TURN_EVALs, not the stored HOLISTIC_FLOW.
            assert _judged(stub, before) == [j for j in judged if j != "flow"]
        finally:
            server.stop()

    evaluations = await storage.evaluations.list_evaluations(sid)
    assert [e.turn for e in evaluations] == [1, 2, 3, 4, 5, 6, None]  # no duplicates
    assert all(e.created_at == e.updated_at for e in evaluations)  # each stored once
    assert (await storage.sessions.get_session(sid)).ended_at is not None
