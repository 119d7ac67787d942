"""Background evaluation through the job queue, with 1 and 2 worker processes.

200 sessions x 8 turns are queued in bulk (the path of `turnjudge evaluate --queue`) and
evaluated by `turnjudge worker` subprocesses with the LLM judge against the OpenAI stub
answering after exactly 300 ms, in its own process (as in `bench_graph`). Workers are started
and registered before the clock starts. Measured: sessions and LLM calls per second from the
first enqueue to the last session closed, queue latency (procrastinate's `deferred` event to
its `started` event, per job) p50/p95, and the enqueue rate of the bulk path (validation,
sessions, transcripts and jobs in one transaction per 500) for 2,000 submissions.

Run: `python -m benchmarks.bench_queue` (or `make bench` for every benchmark).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from api.batch import QUEUE_BATCH
from api.interviews import TranscriptSubmission
from api.runtime import open_runtime
from api.settings import Settings, get_settings
from benchmarks.bench_graph import RemoteStub
from benchmarks.common import (
    machine_info,
    percentile,
    print_table,
    throwaway_database,
    write_results,
)
from graph.state import TranscriptItem
from nodes.judges.settings import JudgeKind
from storage.database import Database
from storage.embeddings import load_embedder
from storage.services import Storage

LATENCY_S = 0.3
SESSIONS, TURNS = 200, 8
WORKER_CONCURRENCY = 4
LLM_MAX_CONCURRENCY = 16
ENQUEUE_SUBMISSIONS = 2_000
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _submission(index: int) -> TranscriptSubmission:
    return TranscriptSubmission(
        participant_id=f"bench-{index}",
        position="backend",
        language="en",
        transcript=[
            TranscriptItem(
                question=f"Question {n}: how would you scale service {n} to 10x traffic?",
                answer=f"I would profile service {n}, add a cache and shard by tenant; "
                f"last year that took p95 from {300 + n} ms to {80 + n} ms.",
            )
            for n in range(1, TURNS + 1)
        ],
    )


async def _scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.transaction() as s:
        return (await s.execute(text(sql), params)).scalar()


def _start_workers(count: int, db: Database, stub: RemoteStub) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "DATABASE_URL": db.urls.libpq,
        "JUDGE": "llm",
        "OPENAI_BASE_URL": stub.base_url,
        "OPENAI_API_KEY": "stub-key",
        "LLM_MAX_CONCURRENCY": str(LLM_MAX_CONCURRENCY),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    return [
        subprocess.Popen(
            [sys.executable, "-m", "api.cli", "worker", "--concurrency", str(WORKER_CONCURRENCY)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]


async def _wait_registered(db: Database, count: int) -> None:
    while await _scalar(db, "SELECT count(*) FROM procrastinate_workers") < count:
        await asyncio.sleep(0.2)


async def _run_workers(count: int, settings: Settings, stub: RemoteStub) -> dict[str, Any]:
    """Queue SESSIONS sessions for `count` fresh workers; time them until all are closed."""
    async with throwaway_database(settings, "turnjudge_bench_queue") as db:
        storage = Storage.from_database(db, load_embedder(settings), settings.queue_name)
        workers = _start_workers(count, db, stub)
        try:
            await _wait_registered(db, count)
            async with open_runtime(settings, storage) as runtime:
                stub.reset_stats()
                start = time.perf_counter()
                queued = await runtime.interviews.queue_transcripts(
                    [_submission(i) for i in range(SESSIONS)]
                )
                ids = [str(q.session_id) for q in queued]
                while (
                    await _scalar(
                        db,
                        "SELECT count(*) FROM prompt_sessions WHERE ended_at IS NOT NULL"
                        " AND id::text = ANY(:ids)",
                        ids=ids,
                    )
                    < SESSIONS
                ):
                    await asyncio.sleep(0.1)
                wall = time.perf_counter() - start
                stats = stub.stats()
            async with db.transaction() as s:
                latencies = [
                    float(row[0])
                    for row in await s.execute(
                        text(
                            """SELECT extract(epoch FROM s.at - d.at)
                                 FROM procrastinate_events d
                                 JOIN procrastinate_events s
                                   ON s.job_id = d.job_id AND s.type = 'started'
                                WHERE d.type = 'deferred'"""
                        )
                    )
                ]
        finally:
            for worker in workers:
                os.kill(worker.pid, signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=120)
    return {
        "workers": count,
        "sessions": SESSIONS,
        "wall_s": round(wall, 2),
        "sessions_per_s": round(SESSIONS / wall, 2),
        "llm_calls": stats["calls"],
        "llm_calls_per_s": round(stats["calls"] / wall, 1),
        "max_llm_concurrency": stats["max_concurrency"],
        "queue_latency_p50_s": round(percentile(latencies, 50), 2),
        "queue_latency_p95_s": round(percentile(latencies, 95), 2),
    }


async def _enqueue_rate(settings: Settings) -> dict[str, Any]:
    """Submissions per second into the queue by the bulk path (no worker running)."""
    async with throwaway_database(settings, "turnjudge_bench_enqueue") as db:
        storage = Storage.from_database(db, load_embedder(settings), "bench-enqueue")
        async with open_runtime(settings, storage) as runtime:
            submissions = [_submission(i) for i in range(ENQUEUE_SUBMISSIONS)]
            await runtime.interviews.queue_transcripts(submissions[:50])  # warm-up
            start = time.perf_counter()
            for first in range(0, ENQUEUE_SUBMISSIONS, QUEUE_BATCH):
                await runtime.interviews.queue_transcripts(submissions[first : first + QUEUE_BATCH])
            bulk = time.perf_counter() - start
            start = time.perf_counter()
            for submission in submissions[:200]:  # one at a time: the HTTP wait=false path
                await runtime.interviews.queue_transcript(submission)
            single = time.perf_counter() - start
        jobs = await _scalar(db, "SELECT count(*) FROM procrastinate_jobs")
    return {
        "submissions": ENQUEUE_SUBMISSIONS,
        "turns": TURNS,
        "batch": QUEUE_BATCH,
        "bulk_per_s": round(ENQUEUE_SUBMISSIONS / bulk, 1),
        "single_per_s": round(200 / single, 1),
        "jobs_stored": jobs,
    }


async def run() -> dict[str, Any]:
    """Measure, print and write `results/queue.json`."""
    settings = get_settings().model_copy(update={"judge": JudgeKind.HEURISTIC})
    enqueue = await _enqueue_rate(settings)
    with RemoteStub(LATENCY_S) as stub:
        runs = [await _run_workers(count, settings, stub) for count in (1, 2)]
    headers = [
        "workers",
        "sessions/s",
        "LLM calls/s",
        "max LLM in flight",
        "queue latency p50 (s)",
        "p95 (s)",
        "wall (s)",
    ]
    rows = [
        [
            r["workers"],
            r["sessions_per_s"],
            r["llm_calls_per_s"],
            r["max_llm_concurrency"],
            r["queue_latency_p50_s"],
            r["queue_latency_p95_s"],
            r["wall_s"],
        ]
        for r in runs
    ]
    enqueue_headers = ["path", "submissions/s"]
    enqueue_rows = [
        [f"bulk (`evaluate --queue`, {QUEUE_BATCH} per transaction)", enqueue["bulk_per_s"]],
        ["one per transaction (HTTP `wait=false`, without HTTP)", enqueue["single_per_s"]],
    ]
    print_table(
        f"{SESSIONS} sessions x {TURNS} turns, LLM at {LATENCY_S * 1000:.0f} ms", headers, rows
    )
    print_table(f"Enqueue rate ({TURNS}-turn transcripts)", enqueue_headers, enqueue_rows)
    payload = {
        "title": "Job queue (procrastinate workers)",
        "machine": await machine_info(),
        "tables": [
            {
                "title": f"{SESSIONS} sessions x {TURNS} turns through the queue, LLM stub at "
                f"{LATENCY_S * 1000:.0f} ms, worker --concurrency {WORKER_CONCURRENCY}, "
                f"LLM_MAX_CONCURRENCY {LLM_MAX_CONCURRENCY}",
                "headers": headers,
                "rows": rows,
            },
            {
                "title": f"Enqueue rate, {ENQUEUE_SUBMISSIONS} transcripts of {TURNS} turns",
                "headers": enqueue_headers,
                "rows": enqueue_rows,
            },
        ],
        "notes": [
            "Workers are `turnjudge worker` subprocesses, started and registered before the "
            "clock starts; the stub runs in its own process.",
            "Queue latency is procrastinate's `deferred` to `started` event of each job: with "
            "every session queued at once it is mostly waiting for a free worker slot.",
            "The enqueue rate covers validation, the session rows, the transcripts and the "
            "jobs, stored in one transaction per batch.",
        ],
        "data": {"runs": runs, "enqueue": enqueue},
    }
    write_results("queue", payload)
    return payload


def main() -> None:
    """Entry point of `python -m benchmarks.bench_queue`."""
    asyncio.run(run())


if __name__ == "__main__":
    main()
