"""The evaluation hot path at 300 ms per LLM call: the Python graph, HTTP, and the floor.

The judge is the LLM judge (the openai SDK, tool calling) against the local
OpenAI-compatible stub (`tests/support/openai_stub.py`) answering every request after
exactly 300 ms, in its own process so that it does not compete with the graph for the GIL
(a real LLM is remote too); storage is the embedded PostgreSQL. Measured, each as
median / min / max of 3 runs after a warm-up, at LLM_MAX_CONCURRENCY=256 (every call can
be in flight: the physical limit is one round trip) and at the default:
- one session of 4, 8, 16 and 32 turns, and 20 sessions x 8 turns at once, through the
  Python graph (`build_graph().ainvoke`, as the API's submissions run: no checkpointer),
  with the bare LLM judge (no guards: the hot path issue 9 measured);
- 20 x 8 with the judge the app builds (guards and injection scan before each call), through
  the Python graph and through HTTP (`POST /submissions` x 20 at once, the real app
  in-process over ASGI, lifespan and all): the HTTP overhead is their ratio;
- the floor: the same 180 requests sent at once by raw aiohttp, nothing else;
- juries and the flow debate (issue 10): one session of 8 turns through the Python graph at
  LLM_MAX_CONCURRENCY=256 with jury sizes 1 / 3 / 5 (JUDGE_SAMPLES) and HOLISTIC_MODE=debate:
  wall time and LLM calls per session. Every juror of every item is in flight at once, so a
  jury should cost about one round trip more than a single judge, not one per juror; the
  debate adds one sequential round trip (the verdict after the advocates). Target: a jury of
  3 costs at most 1.2 x the single judge's wall time.
Reported per case: LLM calls, the stub's maximum in flight, the judge limiter's peak (the
effective concurrency, AIMD), client CPU per LLM call (this process's CPU time / calls:
graph, judge, HTTP client, storage client), time spent in garbage collection, the 1-minute
load average, and the ratios to the 300 ms latency and to the floor.
Start-up: `turnjudge serve` to its first healthy /health, and its RSS then.

Run: `python -m benchmarks.bench_graph` (or `make bench` for every benchmark).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import httpx
from langchain_core.utils.function_calling import convert_to_openai_tool

from api.app import create_app
from api.settings import Settings, get_settings
from benchmarks.common import machine_info, print_table, throwaway_database, write_results
from graph import Services, build_graph, build_services, use_services
from graph.heap import freeze_startup_heap
from nodes.judges.judge import TurnCase
from nodes.judges.llm.judge import LLMJudge, TurnJudgement
from nodes.judges.llm.limiter import AdaptiveLimiter
from nodes.judges.llm.prompts import build_turn_messages
from nodes.judges.llm.structured import openai_messages
from nodes.judges.settings import JudgeKind
from nodes.question_generation import BankQuestionGenerator
from storage.embeddings import load_embedder
from storage.services import Storage

LATENCY_S = 0.3
SINGLE_TURNS = (4, 8, 16, 32)
BATCH_SESSIONS, BATCH_TURNS = 20, 8
REPEATS = 3
HIGH_CONCURRENCY = 256
JURY_TURNS = 8
#: (case name, settings overrides) of the jury rows
JURY_CASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("single judge", {}),
    ("jury of 3 (JUDGE_SAMPLES=3)", {"judge_samples": 3}),
    ("jury of 5 (JUDGE_SAMPLES=5)", {"judge_samples": 5}),
    ("debate (HOLISTIC_MODE=debate)", {"holistic_mode": "debate"}),
    ("jury of 3 + debate", {"judge_samples": 3, "holistic_mode": "debate"}),
)
JURY_HEADERS = [
    "case",
    "LLM calls / session",
    "max in flight",
    "wall s median (min-max)",
    "x single",
]
ROOT = Path(__file__).resolve().parents[1]


class RemoteStub:
    """The OpenAI stub in a child process, with its counters read over HTTP."""

    def __init__(self, latency_s: float) -> None:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.openai_stub",
                "--latency",
                str(latency_s),
                "--keep-alive",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
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
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()  # the child serves until its stdin closes
        self._process.wait(timeout=30)


class GcClock:
    """Wall time spent inside the garbage collector, from `gc.callbacks`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        """A `gc.callbacks` hook: time from each "start" to its "stop"."""
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections += 1

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def _transcript(turns: int, salt: str) -> list[dict[str, str]]:
    return [
        {
            "question": f"Question {n}: how would you scale service {n} to 10x traffic?",
            "answer": f"I would profile service {n}, add a cache and shard by tenant; "
            f"last year that took p95 from {300 + n} ms to {80 + n} ms ({salt}).",
        }
        for n in range(1, turns + 1)
    ]


def _graph_input(turns: int) -> Any:  # a partial state: the graph fills in the defaults
    return {
        "session_id": str(uuid.uuid4()),
        "participant_id": "bench",
        "position": "backend",
        "mode": "submission",
        "transcript": _transcript(turns, uuid.uuid4().hex[:8]),
    }


def _http_body(turns: int) -> dict[str, Any]:
    return {
        "participant_id": "bench",
        "position": "backend",
        "transcript": _transcript(turns, uuid.uuid4().hex[:8]),
    }


async def _measure(
    run_once: Callable[[], Awaitable[None]],
    stub: RemoteStub,
    limiter: AdaptiveLimiter | None,
) -> dict[str, Any]:
    """REPEATS runs of `run_once`: wall, calls, in-flight, CPU per call, GC, load."""
    runs: list[dict[str, float]] = []
    for _ in range(REPEATS):
        stub.reset_stats()
        if limiter is not None:
            limiter.peak_in_flight = 0
        with GcClock() as clock:
            cpu = time.process_time()
            started = time.perf_counter()
            await run_once()
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu
        stats = stub.stats()
        runs.append(
            {
                "wall": wall,
                "calls": stats["calls"],
                "in_flight": stats["max_concurrency"],
                "effective": limiter.peak_in_flight if limiter is not None else 0,
                "cpu_ms_per_call": cpu * 1000 / max(1, stats["calls"]),
                "gc_s": clock.seconds,
                "load": os.getloadavg()[0],
            }
        )
    walls = [r["wall"] for r in runs]
    return {
        "wall_s_median": round(statistics.median(walls), 3),
        "wall_s_min": round(min(walls), 3),
        "wall_s_max": round(max(walls), 3),
        "llm_calls": int(runs[-1]["calls"]),
        "max_in_flight": int(max(r["in_flight"] for r in runs)),
        "effective_concurrency": int(max(r["effective"] for r in runs)),
        "client_cpu_ms_per_call": round(statistics.median(r["cpu_ms_per_call"] for r in runs), 2),
        "gc_s": round(statistics.median(r["gc_s"] for r in runs), 3),
        "load_average_1m": round(statistics.median(r["load"] for r in runs), 2),
    }


async def _floor(stub: RemoteStub, calls: int) -> dict[str, Any]:
    """`calls` judge requests sent at once by raw aiohttp: the client-side minimum."""
    tool = convert_to_openai_tool(TurnJudgement)
    case = TurnCase(
        "backend",
        "en",
        1,
        "How would you scale a service?",
        "Profile, cache, shard by tenant; p95 from 300 ms to 80 ms.",
    )
    body = json.dumps(
        {
            "model": "stub",
            "messages": openai_messages(build_turn_messages(case)),
            "temperature": 0,
            "tools": [tool],
            "parallel_tool_calls": False,
            "tool_choice": {"type": "function", "function": {"name": tool["function"]["name"]}},
        }
    ).encode()
    url = f"{stub.base_url}/chat/completions"
    headers = {"Content-Type": "application/json", "Authorization": "Bearer not-needed"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()

        async def run_once() -> None:
            await asyncio.gather(*(one() for _ in range(calls)))

        await run_once()  # warm-up: connections
        return await _measure(run_once, stub, None)


def _llm_settings(stub: RemoteStub, limit: int, base: Settings) -> Settings:
    return Settings(
        judge=JudgeKind.LLM,
        openai_base_url=stub.base_url,
        llm_model="stub",
        llm_max_concurrency=limit,
        llm_max_retries=0,
        api_keys=[],
        data_dir=base.data_dir,
    )


async def _graph_cases(
    storage: Storage, stub: RemoteStub, settings: Settings
) -> list[tuple[str, dict[str, Any]]]:
    """Through `build_graph().ainvoke`: the bare LLM judge, then the app's (with guards)."""
    services = await build_services(settings, storage=storage)
    bare = LLMJudge.from_settings(settings)  # no guards: the hot path of issue 9's figures
    assert isinstance(services.judge, LLMJudge)
    graph = build_graph()

    def submissions(bound: Services, sessions: int, turns: int) -> Callable[[], Awaitable[None]]:
        async def run_once() -> None:
            with use_services(bound):
                results = await asyncio.gather(
                    *(graph.ainvoke(_graph_input(turns)) for _ in range(sessions))
                )
            assert all(r["status"] == "completed" for r in results)

        return run_once

    cases = []
    for judge, scenarios, suffix in (
        (bare, [(1, n) for n in SINGLE_TURNS] + [(BATCH_SESSIONS, BATCH_TURNS)], ""),
        (services.judge, [(BATCH_SESSIONS, BATCH_TURNS)], ", app judge (guards)"),
    ):
        bound = Services(
            storage=storage, judge=judge, question_generator=services.question_generator
        )
        await submissions(bound, 1, 2)()  # warm-up: connections, imports, plans
        for sessions, turns in scenarios:
            name = f"graph {sessions} x {turns}{suffix}"
            result = await _measure(
                submissions(bound, sessions, turns), stub, judge.limit.limiter()
            )
            print(name, result, flush=True)
            cases.append((name, result))
        await judge.aclose()
    return cases


async def _http_case(
    storage: Storage, stub: RemoteStub, settings: Settings
) -> tuple[str, dict[str, Any]]:
    app = create_app(settings, storage=storage)
    async with app.router.lifespan_context(app):
        judge = app.state.turnjudge.services.judge
        assert isinstance(judge, LLMJudge)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=120
        ) as client:

            async def submit(turns: int) -> None:
                response = await client.post("/submissions", json=_http_body(turns))
                assert response.status_code == 200, response.text

            async def run_once() -> None:
                await asyncio.gather(*(submit(BATCH_TURNS) for _ in range(BATCH_SESSIONS)))

            await submit(2)  # warm-up
            result = await _measure(run_once, stub, judge.limit.limiter())
    print("HTTP", result, flush=True)
    return f"HTTP {BATCH_SESSIONS} x {BATCH_TURNS}, app judge (guards)", result


async def _jury_cases(
    storage: Storage, stub: RemoteStub, base: Settings
) -> tuple[dict[str, Any], list[list[Any]]]:
    """One session of `JURY_TURNS` turns per jury/debate setting: results and table rows."""
    graph = build_graph()
    results: dict[str, Any] = {}
    rows: list[list[Any]] = []
    single: float | None = None
    for name, overrides in JURY_CASES:
        settings = _llm_settings(stub, HIGH_CONCURRENCY, base).model_copy(update=overrides)
        judge = LLMJudge.from_settings(settings)
        bound = Services(
            storage=storage,
            judge=judge,
            question_generator=BankQuestionGenerator(storage.questions),
        )

        async def run_once(bound: Services = bound) -> None:
            with use_services(bound):
                result = await graph.ainvoke(_graph_input(JURY_TURNS))
            assert result["status"] == "completed"

        await run_once()  # warm-up: connections
        result = await _measure(run_once, stub, judge.limit.limiter())
        await judge.aclose()
        wall = result["wall_s_median"]
        single = single or wall
        print(name, result, flush=True)
        results[name] = result
        rows.append(
            [
                name,
                result["llm_calls"],
                result["max_in_flight"],
                f"{wall} ({result['wall_s_min']}-{result['wall_s_max']})",
                round(wall / single, 2),
            ]
        )
    return results, rows


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def measure_startup(env: dict[str, str]) -> dict[str, float]:
    """Seconds from launching `turnjudge serve` to a healthy /health, and its RSS (MB) then."""
    port = _free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError("turnjudge serve exited during start-up")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        ready = time.perf_counter() - started
        return {"ready_s": round(ready, 2), "rss_mb": _rss_mb(process.pid)}
    finally:
        process.terminate()
        process.wait(timeout=30)


async def run() -> dict[str, Any]:
    """Every case at both concurrency settings, the floor, start-up; the results document."""
    base = get_settings()
    db_settings = Settings(db_pool_size=40, db_max_overflow=20, data_dir=base.data_dir)
    embedder = await asyncio.to_thread(load_embedder, base)
    freeze_startup_heap()  # as the API, the CLI and the graph's defaults do once ready
    data: dict[str, Any] = {"latency_s": LATENCY_S, "cases": {}}
    rows: list[list[Any]] = []
    headers = [
        "LLM_MAX_CONCURRENCY",
        "case",
        "LLM calls",
        "max in flight",
        "effective concurrency",
        "wall s median (min-max)",
        "x 300 ms",
        "x floor",
        "client CPU ms/call",
        "GC s",
        "load 1m",
    ]
    async with throwaway_database(db_settings) as db:
        storage = Storage.from_database(db, embedder)
        with RemoteStub(latency_s=LATENCY_S) as stub:
            floor = await _floor(stub, BATCH_SESSIONS * (BATCH_TURNS + 1))
            data["floor"] = floor
            for limit in (HIGH_CONCURRENCY, base.llm_max_concurrency):
                label = str(limit) + (" (default)" if limit == base.llm_max_concurrency else "")
                settings = _llm_settings(stub, limit, base)
                cases = await _graph_cases(storage, stub, settings)
                cases.append(await _http_case(storage, stub, settings))
                data["cases"][label] = dict(cases)
                for name, result in cases:
                    rows.append(_row(label, name, result, floor))
            rows.append(
                _row(
                    "-",
                    f"floor: {BATCH_SESSIONS * (BATCH_TURNS + 1)} requests by raw aiohttp",
                    floor,
                    floor,
                )
            )
            data["jury"], jury_rows = await _jury_cases(storage, stub, base)
    print_table("Evaluation hot path, LLM at 300 ms", headers, rows)
    print_table(
        f"Juries and debate, 1 session x {JURY_TURNS} turns, LLM at 300 ms", JURY_HEADERS, jury_rows
    )
    # Start-up is measured on a migrated, seeded database (a first start also seeds the bank).
    await (await Storage.open(base, migrate=True, seed=True)).close()
    startup = measure_startup(
        {
            "JUDGE": "llm",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "LLM_MODEL": "stub",
            "API_KEYS": "",
            "DATA_DIR": str(base.data_dir),
        }
    )
    print(f"turnjudge serve: ready in {startup['ready_s']} s, RSS {startup['rss_mb']} MB")
    data["startup"] = startup
    return {
        "title": "Graph: the evaluation hot path with an LLM judge at 300 ms",
        "machine": await machine_info(),
        "tables": [
            {
                "title": "Submission-mode evaluation, stub LLM at 300 ms (median/min/max of 3)",
                "headers": headers,
                "rows": rows,
            },
            {
                "title": f"Juries and the flow debate: 1 session x {JURY_TURNS} turns, stub LLM "
                "at 300 ms, LLM_MAX_CONCURRENCY=256 (median/min/max of 3)",
                "headers": JURY_HEADERS,
                "rows": jury_rows,
            },
            {
                "title": "Start-up of `turnjudge serve` (JUDGE=llm)",
                "headers": ["ready s", "RSS MB"],
                "rows": [[startup["ready_s"], startup["rss_mb"]]],
            },
        ],
        "notes": [
            "The judge the app builds from settings (each request the schema's template, "
            "serialised once, plus the prompt, POSTed over aiohttp with the openai SDK "
            "client's URL, headers and exceptions; guards) against the local "
            "OpenAI-compatible stub in its own process, a fixed 300 ms per request; "
            "embedded PostgreSQL.",
            "Wall time covers the whole run: transcript stored, every TURN_EVAL and the "
            "HOLISTIC_FLOW judged and upserted (a session's turns judged in one graph task "
            "and stored in one statement), session closed. HTTP = the real app over ASGI, "
            "in-process.",
            "Client CPU per call = this process's CPU time / LLM calls (graph, judge, HTTP "
            "client, storage client); the database and the stub run in other processes.",
            "The machine is shared with other jobs: compare ratios measured in one run, "
            "with the load average beside them.",
            "Targets (issue 9): 1 x 32 <= 0.50 s, 20 x 8 <= 1.0 s, HTTP <= 1.15 x the "
            "Python path, client CPU <= 3 ms per call.",
            "Juries (issue 10): the LLM judge built from settings (no guards); LLM calls = "
            "TURN_EVALs x jurors + the HOLISTIC_FLOW (x jurors, or 3 + 1 in debate mode). "
            "Target: a jury of 3 <= 1.2 x the single judge's wall time.",
        ],
        "data": data,
    }


def _row(label: str, name: str, result: dict[str, Any], floor: dict[str, Any]) -> list[Any]:
    wall = result["wall_s_median"]
    return [
        label,
        name,
        result["llm_calls"],
        result["max_in_flight"],
        result["effective_concurrency"] or "-",
        f"{wall} ({result['wall_s_min']}-{result['wall_s_max']})",
        round(wall / LATENCY_S, 2),
        round(wall / floor["wall_s_median"], 2),
        result["client_cpu_ms_per_call"],
        result["gc_s"],
        result["load_average_1m"],
    ]


def main() -> None:
    """Entry point used by `python -m benchmarks`."""
    document = asyncio.run(run())
    write_results("graph", document)


if __name__ == "__main__":
    main()
