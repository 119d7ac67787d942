"""What a jury and the flow debate cost: wall time and LLM calls per submitted session.

The submission path of `bench_graph` (the graph, the LLM judge without guards, embedded
PostgreSQL) against the out-of-process stub at 300 ms, one session of 8 turns, for jury sizes
1 / 3 / 5 (JUDGE_SAMPLES) and for HOLISTIC_MODE=debate. Every juror of every item is in
flight at once, so a jury should cost about one round trip more than a single judge, not
one per juror; the debate adds one sequential round trip (the verdict after the advocates).
Target (issue 10): a jury of 3 costs at most 1.2 x the single judge's wall time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from api.settings import Settings, get_settings
from benchmarks.bench_graph import LATENCY_S, RemoteStub, _graph_input, _llm_settings, _measure
from benchmarks.common import machine_info, print_table, throwaway_database, write_results
from graph import Services, build_graph, use_services
from graph.heap import freeze_startup_heap
from nodes.judges.llm.judge import LLMJudge
from nodes.question_generation import BankQuestionGenerator
from storage.embeddings import load_embedder
from storage.services import Storage

TURNS = 8
#: (case name, settings overrides)
CASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("single judge", {}),
    ("jury of 3 (JUDGE_SAMPLES=3)", {"judge_samples": 3}),
    ("jury of 5 (JUDGE_SAMPLES=5)", {"judge_samples": 5}),
    ("debate (HOLISTIC_MODE=debate)", {"holistic_mode": "debate"}),
    ("jury of 3 + debate", {"judge_samples": 3, "holistic_mode": "debate"}),
)


async def run() -> dict[str, Any]:
    """Every case, measured as `bench_graph` measures (median of 3 runs)."""
    base = get_settings()
    db_settings = Settings(db_pool_size=40, db_max_overflow=20, data_dir=base.data_dir)
    embedder = await asyncio.to_thread(load_embedder, base)
    freeze_startup_heap()
    headers = [
        "case",
        "LLM calls / session",
        "max in flight",
        "wall s median (min-max)",
        "x single",
    ]
    rows: list[list[Any]] = []
    data: dict[str, Any] = {"latency_s": LATENCY_S, "turns": TURNS, "cases": {}}
    graph = build_graph()
    async with throwaway_database(db_settings) as db:
        storage = Storage.from_database(db, embedder)
        with RemoteStub(latency_s=LATENCY_S) as stub:
            single: float | None = None
            for name, overrides in CASES:
                settings = _llm_settings(stub, 256, base).model_copy(update=overrides)
                judge = LLMJudge.from_settings(settings)
                bound = Services(
                    storage=storage,
                    judge=judge,
                    question_generator=BankQuestionGenerator(storage.questions),
                )

                async def run_once(bound: Services = bound) -> None:
                    with use_services(bound):
                        result = await graph.ainvoke(_graph_input(TURNS))
                    assert result["status"] == "completed"

                await run_once()  # warm-up: connections
                result = await _measure(run_once, stub, judge.limit.limiter())
                await judge.aclose()
                wall = result["wall_s_median"]
                single = single or wall
                print(name, result, flush=True)
                data["cases"][name] = result
                rows.append(
                    [
                        name,
                        result["llm_calls"],
                        result["max_in_flight"],
                        f"{wall} ({result['wall_s_min']}-{result['wall_s_max']})",
                        round(wall / single, 2),
                    ]
                )
    print_table(f"Juries and debate, 1 session x {TURNS} turns, LLM at 300 ms", headers, rows)
    return {
        "title": "Juries and the flow debate: cost per submitted session, LLM at 300 ms",
        "machine": await machine_info(),
        "tables": [
            {
                "title": f"1 session x {TURNS} turns, stub LLM at 300 ms (median/min/max of 3)",
                "headers": headers,
                "rows": rows,
            }
        ],
        "notes": [
            "The graph's submission path with the LLM judge built from settings (no guards), "
            "the stub in its own process at a fixed 300 ms per request, embedded PostgreSQL.",
            "LLM calls = TURN_EVALs x jurors + the HOLISTIC_FLOW (x jurors, or 3 + 1 in "
            "debate mode).",
            "Target (issue 10): a jury of 3 <= 1.2 x the single judge's wall time.",
        ],
        "data": data,
    }


def main() -> None:
    """Entry point used by `python -m benchmarks`."""
    write_results("jury", asyncio.run(run()))


if __name__ == "__main__":
    main()
