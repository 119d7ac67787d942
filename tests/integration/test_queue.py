"""Evaluation as background jobs: real PostgreSQL, real `turnjudge worker` subprocesses.

The LLM is the local OpenAI-compatible stub (it counts the requests it receives, so a
duplicated evaluation would show as an extra call); the API runs in process over ASGI. The
workers run with a short heartbeat (0.5 s) and stall window (2 s) so that crash recovery is
quick to observe; the defaults are documented in the README.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from api.callbacks import SIGNATURE_HEADER, verify_signature
from api.settings import Settings
from nodes.judges.settings import JudgeKind
from storage.models import EvaluationType
from storage.services import Storage
from tests.support.http import app_client
from tests.support.openai_stub import OpenAIStub
from tests.support.workers import PROJECT_ROOT, CallbackReceiver, WorkerProcess

pytestmark = pytest.mark.integration

SECRET = "test-callback-secret-0123"  # tenant `default` (no authentication here)
ACME_SECRET = "acme-callback-secret-4567"
ACME_KEY = "acme-api-key-0123456789"
GLOBEX_KEY = "globex-api-key-0123456789"
TURNS = [
    (
        "How do you make payment webhooks idempotent?",
        "Idempotency keys stored with a unique index; INSERT ON CONFLICT returns the first row.",
    ),
    (
        "How do you find a slow query?",
        "pg_stat_statements for the top offenders, then EXPLAIN ANALYZE and a covering index.",
    ),
    (
        "What do you monitor in production?",
        "p95 latency, error rate and saturation, with alerts on the burn rate of the SLO.",
    ),
]
CALLS_PER_SESSION = len(TURNS) + 1  # every TURN_EVAL and the HOLISTIC_FLOW
WORKER_CONCURRENCY = 4


def _body(participant: str, **extra: Any) -> dict[str, Any]:
    return {
        "participant_id": participant,
        "position": "backend",
        "language": "en",
        "transcript": [{"question": q, "answer": a} for q, a in TURNS],
        **extra,
    }


@pytest.fixture(scope="module")
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub(latency_s=0.3) as server:
        yield server


@pytest.fixture(scope="module")
def worker_env(storage: Storage, stub: OpenAIStub) -> dict[str, str]:
    return {
        "DATABASE_URL": storage.db.urls.libpq,
        "JUDGE": "llm",
        "OPENAI_BASE_URL": stub.base_url,
        "OPENAI_API_KEY": "stub-key",
        "LLM_MAX_RETRIES": "1",
        "LLM_BACKOFF_S": "0.01",
        "JOB_MAX_ATTEMPTS": "2",
        "JOB_BACKOFF_S": "0",
        "WORKER_HEARTBEAT_S": "0.5",
        "WORKER_STALLED_AFTER_S": "2",
        "CALLBACK_SECRET": SECRET,
        "CALLBACK_SECRETS": f"acme:{ACME_SECRET}",
        "CALLBACK_BACKOFF_S": "1",
        "CALLBACK_MAX_ATTEMPTS": "4",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "LANGSMITH_TRACING": "false",
    }


class Workers:
    """The module's worker processes, (re)started on demand."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: list[WorkerProcess] = []

    def start(self) -> WorkerProcess:
        worker = WorkerProcess(
            self.env,
            concurrency=WORKER_CONCURRENCY,
            log=self.logs / f"worker-{len(self.running) + 1}-{time.monotonic_ns()}.log",
        )
        self.running.append(worker)
        return worker

    def ensure(self, count: int) -> None:
        self.running = [w for w in self.running if w.alive()]
        while len(self.running) < count:
            self.start()

    def stop_all(self) -> None:
        for worker in self.running:
            worker.terminate()
        self.running.clear()


@pytest.fixture(scope="module")
def workers(
    worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    pool = Workers(worker_env, tmp_path_factory.mktemp("workers"))
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
async def client(storage: Storage, stub: OpenAIStub) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(storage, stub) as http:
        yield http


@contextlib.asynccontextmanager
async def _client(
    storage: Storage, stub: OpenAIStub, **settings_: Any
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        judge=JudgeKind.LLM,
        openai_base_url=stub.base_url,
        llm_backoff_s=0.01,
        llm_max_retries=1,
        callback_secret=SECRET,
        **settings_,
    )
    async with app_client(storage, settings) as (_, http):
        yield http


async def _query(storage: Storage, sql: str, **params: Any) -> list[Any]:
    async with storage.db.transaction() as s:
        return list((await s.execute(text(sql), params)).all())


async def _wait_reports(
    client: httpx.AsyncClient, session_ids: list[str], statuses: set[str], timeout: float = 120
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        reports = [(await client.get(f"/sessions/{sid}/report")).json() for sid in session_ids]
        if all(r["status"] in statuses for r in reports) or time.monotonic() > deadline:
            return reports
        await asyncio.sleep(0.25)


async def _post_queued(
    client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST /submissions?wait=false: the reply, whatever it is."""
    return await client.post("/submissions", params={"wait": "false"}, json=body, headers=headers)


async def _queue(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await _post_queued(client, body)
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["status"] == "queued" and isinstance(queued["job_id"], int)
    return dict(queued)


async def test_queued_submission_is_stored_with_its_job_before_any_worker(
    client: httpx.AsyncClient, storage: Storage
) -> None:
    """202 at once; the transcript and the job are both stored; the report says queued."""
    queued = await _queue(client, _body("queued-only"))
    report = (await client.get(f"/sessions/{queued['session_id']}/report")).json()
    assert report["status"] == "queued"
    assert report["job_id"] == queued["job_id"]
    assert [t["answer"] for t in report["turns"]] == [a for _, a in TURNS]
    # Submitting again while it waits returns the same job (one job per session at a time).
    again = await client.post(f"/sessions/{queued['session_id']}/submit", params={"wait": "false"})
    assert again.status_code == 202 and again.json()["job_id"] == queued["job_id"]
    rows = await _query(
        storage,
        "SELECT status::text, task_name FROM procrastinate_jobs WHERE args->>'session_id' = :sid",
        sid=queued["session_id"],
    )
    assert rows == [("todo", "turnjudge.evaluate_session")]


async def test_a_job_already_running_is_reported_as_evaluating(
    client: httpx.AsyncClient, storage: Storage
) -> None:
    """A re-submission while a worker runs the session's job gets that job, `evaluating`."""
    queued = await _queue(client, _body("running-already"))
    job_id, sid = queued["job_id"], queued["session_id"]
    await _query(
        storage,
        "UPDATE procrastinate_jobs SET status = 'doing' WHERE id = :id RETURNING id",
        id=job_id,
    )  # as a worker would have taken it
    try:
        again = await client.post(f"/sessions/{sid}/submit", params={"wait": "false"})
        assert again.status_code == 202
        assert (again.json()["job_id"], again.json()["status"]) == (job_id, "evaluating")
        report = (await client.get(f"/sessions/{sid}/report")).json()
        assert report["status"] == "evaluating"
    finally:
        await _query(
            storage,
            "UPDATE procrastinate_jobs SET status = 'todo' WHERE id = :id RETURNING id",
            id=job_id,
        )


async def test_invalid_queued_submission_stores_nothing(
    client: httpx.AsyncClient, storage: Storage
) -> None:
    before = await _query(storage, "SELECT count(*) FROM procrastinate_jobs")
    bad = _body("bad-callback", callback_url="file:///etc/passwd")
    response = await _post_queued(client, bad)
    assert response.status_code == 422, response.text
    assert "callback_url" in response.text
    response = await client.post("/submissions", json=_body("sync", callback_url="http://x/"))
    assert response.status_code == 422  # a callback needs wait=false
    assert await _query(storage, "SELECT count(*) FROM procrastinate_jobs") == before


async def test_forty_sessions_survive_a_worker_killed_mid_way(
    client: httpx.AsyncClient, storage: Storage, stub: OpenAIStub, workers: Workers
) -> None:
    """Two workers, one SIGKILLed after a third: all 40 complete, every item judged once."""
    workers.stop_all()
    await _query(
        storage, "DELETE FROM procrastinate_jobs WHERE status = 'todo' RETURNING id"
    )  # earlier tests
    stub.clear_faults()
    first = workers.start()
    while not await _query(storage, "SELECT id FROM procrastinate_workers"):
        assert first.alive(), first.tail()
        await asyncio.sleep(0.2)
    (first_id,) = (await _query(storage, "SELECT max(id) FROM procrastinate_workers"))[0]
    second = workers.start()
    stub.reset_stats()

    queued = [await _queue(client, _body(f"crash-{i}")) for i in range(40)]
    ids = [q["session_id"] for q in queued]

    # Wait for a third to be done while the first worker has jobs in hand, then kill it.
    killed_jobs: list[Any] = []
    deadline = time.monotonic() + 120
    while not killed_jobs:
        assert time.monotonic() < deadline, first.tail()
        done = await _query(
            storage,
            "SELECT count(*) FROM prompt_sessions"
            " WHERE id::text = ANY(:ids) AND ended_at IS NOT NULL",
            ids=ids,
        )
        if done[0][0] >= len(ids) // 3:
            in_hand = await _query(
                storage,
                "SELECT id FROM procrastinate_jobs WHERE status = 'doing' AND worker_id = :w",
                w=first_id,
            )
            if in_hand:
                first.kill()
                killed_jobs = [row[0] for row in in_hand]
        await asyncio.sleep(0.05)

    reports = await _wait_reports(client, ids, {"completed", "failed"})
    assert [r["status"] for r in reports] == ["completed"] * 40, second.tail()
    assert second.alive()

    counts = await _query(
        storage,
        """SELECT evaluation_type::text, count(*), count(DISTINCT (session_id, turn))
             FROM prompt_evaluations WHERE session_id::text = ANY(:ids) GROUP BY 1""",
        ids=ids,
    )
    assert sorted(counts) == [
        (EvaluationType.HOLISTIC_FLOW.value, 40, 40),
        (EvaluationType.TURN_EVAL.value, 40 * len(TURNS), 40 * len(TURNS)),
    ]
    # Every item judged once: only the calls in flight in the killed worker were repeated.
    expected = 40 * CALLS_PER_SESSION
    assert expected <= stub.calls <= expected + len(killed_jobs) * CALLS_PER_SESSION
    retried = await _query(
        storage,
        "SELECT id, status::text, attempts FROM procrastinate_jobs WHERE id = ANY(:ids)",
        ids=killed_jobs,
    )
    # Finished jobs count their runs: a job picked up again after the crash ran twice.
    assert retried and all(row[1] == "succeeded" and row[2] >= 2 for row in retried)
    events = await _query(
        storage,
        "SELECT DISTINCT type::text FROM procrastinate_events WHERE job_id = ANY(:ids)",
        ids=killed_jobs,
    )
    assert {"started", "succeeded"} <= {row[0] for row in events}


async def test_job_failing_every_llm_attempt_ends_failed_then_resubmission_completes(
    client: httpx.AsyncClient, stub: OpenAIStub, workers: Workers
) -> None:
    workers.ensure(2)
    stub.add_fault("500", times=None)
    try:
        queued = await _queue(client, _body("always-fails"))
        (report,) = await _wait_reports(client, [queued["session_id"]], {"failed", "completed"})
    finally:
        stub.clear_faults()
    assert report["status"] == "failed"
    assert report["attempts"] == 2  # JOB_MAX_ATTEMPTS
    assert report["error"].startswith("EvaluationIncompleteError")
    assert report["ended_at"] is None
    page = await client.get(f"/sessions/{queued['session_id']}/report.html")
    assert "evaluation failed, 2 attempt(s): EvaluationIncompleteError" in page.text

    again = await client.post(f"/sessions/{queued['session_id']}/submit", params={"wait": "false"})
    assert again.status_code == 202
    assert again.json()["job_id"] != queued["job_id"]
    (report,) = await _wait_reports(client, [queued["session_id"]], {"completed", "failed"})
    assert report["status"] == "completed"
    assert report["error"] is None and report["ended_at"] is not None


async def test_synchronous_submit_racing_a_queued_job_judges_each_item_once(
    client: httpx.AsyncClient, storage: Storage, stub: OpenAIStub, workers: Workers
) -> None:
    workers.ensure(2)
    for round_ in range(3):
        stub.reset_stats()
        queued = await _queue(client, _body(f"race-{round_}"))
        sid = queued["session_id"]
        response = await client.post(f"/sessions/{sid}/submit")  # in the request, now
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed"
        await _wait_reports(client, [sid], {"completed"})
        job = await _query(
            storage,
            "SELECT status::text FROM procrastinate_jobs WHERE id = :id",
            id=queued["job_id"],
        )
        deadline = time.monotonic() + 30
        while job[0][0] in {"todo", "doing"} and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            job = await _query(
                storage,
                "SELECT status::text FROM procrastinate_jobs WHERE id = :id",
                id=queued["job_id"],
            )
        assert job[0][0] == "succeeded"
        assert stub.calls == CALLS_PER_SESSION


async def test_callbacks_are_signed_once_per_session_and_retried(
    client: httpx.AsyncClient, workers: Workers
) -> None:
    workers.ensure(2)
    with CallbackReceiver(fail_first={"/flaky": 2}) as receiver:
        steady = [
            await _queue(client, _body(f"cb-{i}", callback_url=receiver.url(f"/ok/{i}")))
            for i in range(3)
        ]
        flaky = await _queue(client, _body("cb-flaky", callback_url=receiver.url("/flaky")))
        for i, queued in enumerate(steady):
            (delivery,) = receiver.wait_for(f"/ok/{i}", 1)
            assert verify_signature(
                SECRET.encode(), delivery.body, delivery.headers[SIGNATURE_HEADER]
            )
            payload = json.loads(delivery.body)
            assert payload["session_id"] == queued["session_id"]
            assert payload["status"] == "completed"
        got = receiver.wait_for("/flaky", 1)
        assert [d.status for d in got] == [503, 503, 200]
        assert [d.headers["X-Turnjudge-Attempt"] for d in got] == ["1", "2", "3"]
        assert all(
            verify_signature(SECRET.encode(), d.body, d.headers[SIGNATURE_HEADER]) for d in got
        )
        assert not verify_signature(
            b"another-tenant-secret", got[-1].body, got[-1].headers[SIGNATURE_HEADER]
        )
        await asyncio.sleep(1.5)  # no late duplicates
        assert all(len(receiver.received(f"/ok/{i}")) == 1 for i in range(3))
    report = (await client.get(f"/sessions/{flaky['session_id']}/report")).json()
    assert report["callback"]["attempts"] == 3
    assert report["callback"]["delivered"] is True
    assert report["callback"]["last_outcome"] == "HTTP 200"


async def test_sigterm_lets_a_worker_finish_its_started_job(
    client: httpx.AsyncClient, storage: Storage, stub: OpenAIStub, workers: Workers
) -> None:
    workers.stop_all()
    stub.latency_s = 1.5
    try:
        worker = workers.start()
        queued = await _queue(client, _body("sigterm"))
        deadline = time.monotonic() + 60
        while True:
            rows = await _query(
                storage,
                "SELECT status::text FROM procrastinate_jobs WHERE id = :id",
                id=queued["job_id"],
            )
            if rows[0][0] == "doing":
                break
            assert time.monotonic() < deadline and worker.alive(), worker.tail()
            await asyncio.sleep(0.05)
        assert worker.terminate(timeout=60) == 0, worker.tail()
    finally:
        stub.latency_s = 0.3
    rows = await _query(
        storage, "SELECT status::text FROM procrastinate_jobs WHERE id = :id", id=queued["job_id"]
    )
    assert rows == [("succeeded",)]
    report = (await client.get(f"/sessions/{queued['session_id']}/report")).json()
    assert report["status"] == "completed"
    uuid.UUID(report["session_id"])


async def test_a_queued_session_belongs_to_its_tenant_and_signs_with_its_secret(
    storage: Storage, stub: OpenAIStub, workers: Workers
) -> None:
    """The job runs as the submitting tenant; others get 404; each tenant signs with its key."""
    workers.ensure(1)
    stub.clear_faults()
    keys = f"acme:{ACME_KEY},globex:{GLOBEX_KEY}"
    async with _client(
        storage, stub, api_keys=keys, callback_secrets=f"acme:{ACME_SECRET}"
    ) as http:
        acme, globex = {"X-API-Key": ACME_KEY}, {"X-API-Key": GLOBEX_KEY}
        with CallbackReceiver() as receiver:
            jobs_before = await _query(storage, "SELECT count(*) FROM procrastinate_jobs")
            sessions_before = await _query(storage, "SELECT count(*) FROM prompt_sessions")
            refused = await _post_queued(
                http, _body("globex-cb", callback_url=receiver.url("/globex")), globex
            )
            assert refused.status_code == 422, refused.text
            assert refused.json()["field"] == "body.callback_url"
            assert "globex" in refused.json()["detail"]
            assert await _query(storage, "SELECT count(*) FROM procrastinate_jobs") == jobs_before
            assert await _query(storage, "SELECT count(*) FROM prompt_sessions") == sessions_before

            response = await _post_queued(
                http, _body("acme-cb", callback_url=receiver.url("/acme")), acme
            )
            assert response.status_code == 202, response.text
            queued = response.json()
            sid = queued["session_id"]
            stored = await _query(
                storage,
                "SELECT s.tenant, j.args ->> 'tenant' FROM prompt_sessions s"
                " JOIN procrastinate_jobs j ON j.args ->> 'session_id' = s.id::text"
                " WHERE j.id = :id",
                id=queued["job_id"],
            )
            assert stored == [("acme", "acme")]

            unknown = await http.get(f"/sessions/{uuid.uuid4()}/report", headers=globex)
            for method, path, params in [
                ("GET", f"/sessions/{sid}/report", {}),
                ("GET", f"/sessions/{sid}/report.html", {}),
                ("POST", f"/sessions/{sid}/submit", {"wait": "false"}),
                ("POST", f"/sessions/{sid}/submit", {}),
            ]:
                other = await http.request(method, path, params=params, headers=globex)
                assert other.status_code == 404, (method, path, other.text)
                assert other.json()["error"] == unknown.json()["error"]
            resubmitted = await _post_queued(http, _body("acme-cb", session_id=sid), globex)
            assert resubmitted.status_code == 404, resubmitted.text

            (delivery,) = receiver.wait_for("/acme", 1)
            signature = delivery.headers[SIGNATURE_HEADER]
            assert verify_signature(ACME_SECRET.encode(), delivery.body, signature)
            assert not verify_signature(SECRET.encode(), delivery.body, signature)
            assert json.loads(delivery.body)["session_id"] == sid
        report = (await http.get(f"/sessions/{sid}/report", headers=acme)).json()
        assert report["status"] == "completed"
        assert report["callback"]["delivered"] is True
        jobs = await _query(
            storage,
            "SELECT task_name, count(*) FROM procrastinate_jobs"
            " WHERE args ->> 'session_id' = :sid GROUP BY 1 ORDER BY 1",
            sid=sid,
        )
        # One evaluation and one delivery: globex's attempts queued nothing.
        assert jobs == [("turnjudge.deliver_callback", 1), ("turnjudge.evaluate_session", 1)]


async def test_evaluate_queue_wait_follows_the_sessions_to_the_end(
    storage: Storage, workers: Workers, worker_env: dict[str, str], tmp_path: Path
) -> None:
    """`turnjudge evaluate FILE --queue --wait`: ids printed, then waits until all are done."""
    workers.ensure(1)
    path = tmp_path / "records.jsonl"
    path.write_text(
        "\n".join(json.dumps(_body(f"cli-wait-{n}")) for n in range(3)),
        "utf-8",
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "api.cli", "evaluate", str(path), "--queue", "--wait"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **worker_env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    session_ids = result.stdout.split()
    assert len(session_ids) == 3
    assert "3 queued, 0 refused" in result.stderr and "3 completed, 0 failed" in result.stderr
    for sid in session_ids:  # done when the command returned, not later
        rows = await _query(
            storage,
            "SELECT evaluation_type::text FROM prompt_evaluations WHERE session_id::text = :sid",
            sid=sid,
        )
        assert sorted(r[0] for r in rows) == ["HOLISTIC_FLOW"] + ["TURN_EVAL"] * len(TURNS)
