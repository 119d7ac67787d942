"""Submission-mode evaluation wall time with an LLM judge at a fixed 300 ms latency.

The judge is the real `ChatOpenAI` path against the local OpenAI-compatible stub
(`tests/support/openai_stub.py`) answering every request after exactly 300 ms, run in its own
process so that it does not compete with the graph for the GIL (a real LLM is remote too);
storage is the embedded PostgreSQL. Measured: one session of 4, 8, 16 and 32 turns, and
20 sessions x 8 turns submitted at once, each with the number of LLM calls and the maximum
concurrency the stub saw.
Two settings of LLM_MAX_CONCURRENCY: high enough for every call to be in flight (the physical
limit is then one round trip: all TURN_EVALs and the HOLISTIC_FLOW are independent), and the
default. Wall time includes storing the transcript, every upsert and closing the session.

Run: `python -m benchmarks.bench_graph` (or `make bench` for every benchmark).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
import uuid
from types import TracebackType
from typing import Any

import httpx

from benchmarks.common import machine_info, print_table, throwaway_database, write_results
from graph import Services, build_graph, use_services
from nodes.judges.llm.judge import LLMJudge
from nodes.question_generation import BankQuestionGenerator
from storage.embeddings import load_embedder
from storage.services import Storage
from storage.settings import Settings, get_settings

LATENCY_S = 0.3
SINGLE_TURNS = (4, 8, 16, 32)
BATCH_SESSIONS, BATCH_TURNS = 20, 8
REPEATS = 3
HIGH_CONCURRENCY = 256


class RemoteStub:
    """The OpenAI stub in a child process, with its counters read over HTTP."""

    def __init__(self, latency_s: float) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.openai_stub", "--latency", str(latency_s),
             "--keep-alive"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self._process.stdout is not None
        self.base_url = self._process.stdout.readline().strip()
        self._root = self.base_url.removesuffix("/v1")

    def reset_stats(self) -> None:
        """Zero the call and concurrency counters."""
        httpx.post(f"{self._root}/stats/reset").raise_for_status()

    def stats(self) -> dict[str, int]:
        """`calls` and `max_concurrency` since the last reset."""
        response = httpx.get(f"{self._root}/stats")
        response.raise_for_status()
        stats: dict[str, int] = response.json()
        return stats

    def __enter__(self) -> RemoteStub:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()  # the child serves until its stdin closes
        self._process.wait(timeout=30)


def _submission(turns: int) -> dict[str, Any]:
    return {
        "session_id": str(uuid.uuid4()),
        "participant_id": "bench",
        "position": "backend",
        "mode": "submission",
        "transcript": [
            {
                "question": f"Question {n}: how would you scale service {n} to 10x traffic?",
                "answer": f"I would profile service {n}, add a cache and shard by tenant; "
                f"last year that took p95 from {300 + n} ms to {80 + n} ms.",
            }
            for n in range(1, turns + 1)
        ],
    }


async def _measure(
    services: Services, stub: RemoteStub, sessions: int, turns: int
) -> dict[str, float | int]:
    graph = build_graph()
    timings, calls, peaks = [], [], []
    for _ in range(REPEATS):
        stub.reset_stats()
        started = time.perf_counter()
        with use_services(services):
            results = await asyncio.gather(
                *(graph.ainvoke(_submission(turns)) for _ in range(sessions))
            )
        timings.append(time.perf_counter() - started)
        assert all(r["status"] == "completed" for r in results)
        stats = stub.stats()
        calls.append(stats["calls"])
        peaks.append(stats["max_concurrency"])
    return {
        "sessions": sessions,
        "turns": turns,
        "wall_s_median": round(statistics.median(timings), 3),
        "wall_s_min": round(min(timings), 3),
        "llm_calls": calls[-1],
        "max_concurrency": max(peaks),
    }


async def run() -> dict[str, Any]:
    """Run every scenario for both concurrency settings; return the results document."""
    base = get_settings()
    db_settings = Settings(db_pool_size=40, db_max_overflow=20, data_dir=base.data_dir)
    embedder = await asyncio.to_thread(load_embedder, base)
    rows: list[list[Any]] = []
    data: dict[str, list[dict[str, float | int]]] = {}
    async with throwaway_database(db_settings) as db:
        storage = Storage.from_database(db, embedder)
        with RemoteStub(latency_s=LATENCY_S) as stub:
            for label, limit in (
                (f"LLM_MAX_CONCURRENCY={HIGH_CONCURRENCY}", HIGH_CONCURRENCY),
                (f"LLM_MAX_CONCURRENCY={base.llm_max_concurrency} (default)",
                 base.llm_max_concurrency),
            ):
                judge = LLMJudge.from_settings(Settings(
                    openai_base_url=stub.base_url, llm_model="stub",
                    llm_max_concurrency=limit, llm_max_retries=0,
                ))
                services = Services(storage=storage, judge=judge,
                                    question_generator=BankQuestionGenerator(storage.questions))
                await _measure(services, stub, 1, 2)  # warm-up: connections, imports, plans
                scenarios = [(1, n) for n in SINGLE_TURNS] + [(BATCH_SESSIONS, BATCH_TURNS)]
                data[label] = []
                for sessions, turns in scenarios:
                    result = await _measure(services, stub, sessions, turns)
                    data[label].append(result)
                    rows.append([
                        label, f"{sessions} x {turns}", result["llm_calls"],
                        result["max_concurrency"], result["wall_s_median"],
                        round(result["wall_s_median"] / LATENCY_S, 2),
                    ])
    headers = ["concurrency", "sessions x turns", "LLM calls", "max in flight",
               "wall s (median of 3)", "x latency"]
    print_table("Submission-mode evaluation, LLM at 300 ms", headers, rows)
    return {
        "title": "Graph: submission-mode evaluation with an LLM judge",
        "machine": await machine_info(),
        "tables": [{"title": "Submission-mode evaluation wall time, stub LLM at 300 ms",
                    "headers": headers, "rows": rows}],
        "notes": [
            "Real ChatOpenAI (function calling, structured output) against the local "
            "OpenAI-compatible stub at a fixed 300 ms per request; embedded PostgreSQL.",
            "Wall time covers the whole graph run: transcript stored, every TURN_EVAL and the "
            "HOLISTIC_FLOW judged (fanned out with Send) and upserted, session closed.",
            "Targets: one session <= 0.6 s (2 x latency) up to 32 turns, and 20 x 8 <= 1.0 s, "
            "when LLM_MAX_CONCURRENCY covers every call in flight.",
            "A mature evaluation framework took 7.4 s on 20 x 8 (220 calls) at the same latency.",
        ],
        "data": data,
    }


def main() -> None:
    """Entry point used by `python -m benchmarks`."""
    document = asyncio.run(run())
    write_results("graph", document)


if __name__ == "__main__":
    main()
