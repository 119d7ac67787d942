"""LangGraph Studio / `langgraph dev`: time to ready, then time to the first question.

`langgraph dev` is started on a throwaway database twice: cold (empty database: migrations
and the question bank's embeddings at start-up) and warm (the same database again). After
each start, several new threads ask for their first question (`runs.wait` until the
interrupt). The Studio app (graph/studio.py) builds the services while the server starts,
so a run only asks. Target: the first question within 5 s of the server answering.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langgraph_sdk import get_client

from benchmarks.common import machine_info, median, print_table, throwaway_database, write_results
from tests.support.langgraph_dev import langgraph_dev

THREADS = 5
TARGET_S = 5.0


async def _first_questions(url: str) -> list[float]:
    client = get_client(url=url)
    timings = []
    for index in range(THREADS):
        thread = await client.threads.create()
        started = time.perf_counter()
        await client.runs.wait(
            thread["thread_id"],
            "turnjudge",
            input={"participant_id": f"bench-{index}", "position": "backend", "max_turns": 3},
        )
        timings.append(time.perf_counter() - started)
        state = await client.threads.get_state(thread["thread_id"])
        assert any(task.get("interrupts") for task in state["tasks"]), state
    return timings


async def run() -> dict[str, Any]:
    """Start the server cold then warm; time readiness and first questions."""
    rows: list[list[Any]] = []
    data: dict[str, Any] = {}
    async with throwaway_database(prefix="turnjudge_bench_studio") as db:
        machine = await machine_info(db)
        for label in ("cold (empty database)", "warm"):
            with langgraph_dev(db.urls.sqlalchemy, timeout_s=300) as server:
                firsts = await _first_questions(server.url)
            data[label] = {
                "ready_s": round(server.ready_s, 2),
                "first_question_s": [round(t, 3) for t in firsts],
            }
            rows.append(
                [
                    label,
                    round(server.ready_s, 1),
                    round(firsts[0], 2),
                    round(median(firsts[1:]), 2),
                    round(max(firsts), 2),
                    "yes" if max(firsts) < TARGET_S else "NO",
                ]
            )
    headers = [
        "start",
        "process start -> ready s",
        "1st run: first question s",
        f"next {THREADS - 1} runs: median s",
        "max s",
        f"< {TARGET_S:g} s",
    ]
    print_table("langgraph dev: readiness and first question", headers, rows)
    return {
        "title": "LangGraph Studio (langgraph dev): start-up and first question",
        "machine": machine,
        "tables": [
            {
                "title": "langgraph dev, offline judge, embedded PostgreSQL",
                "headers": headers,
                "rows": rows,
            }
        ],
        "notes": [
            "Ready = `langgraph dev --no-reload` launched until `GET /ok` answers; it includes "
            "importing the graph and the Studio app's lifespan, which opens the database, "
            "migrates, seeds the bank when empty and loads the embedding model.",
            "First question = `runs.wait` on a new thread until the interrupt of question 1, "
            "including langgraph-api's queue (it polls for new runs).",
            f"Target: every first question within {TARGET_S:g} s of the server being ready.",
        ],
        "data": data,
    }


def main() -> None:
    """Entry point used by `python -m benchmarks`."""
    document = asyncio.run(run())
    write_results("studio", document)


if __name__ == "__main__":
    main()
