"""`langgraph dev` (what LangGraph Studio talks to) serves the exported graph offline.

One server for the module, on the test database with the offline judge: Studio's forms come
from `GET /assistants/{id}/schemas` (the input and context schemas must be there, not null),
a thread runs through an interrupt, typed errors reach the client with their message.
The start-up and first-question times are measured by `python -m benchmarks studio`
(target: the first question within 5 s of the server answering); here they are only bounded
generously, as the machine is shared.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from storage.database import DatabaseUrls
from storage.services import Storage
from tests.support.langgraph_dev import DevServer, langgraph_dev

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: What a Studio user sets; everything else in the state is written by the nodes.
INPUT_FIELDS = {
    "session_id",
    "participant_id",
    "exam_id",
    "position",
    "language",
    "max_turns",
    "mode",
    "transcript",
    "reevaluate",
    "metadata",
}
CONTEXT_FIELDS = {"judge", "llm_model", "llm_max_concurrency", "llm_timeout_s", "llm_max_retries"}
ANSWER = (
    "I would add a composite index and check the query plan; in my last job that cut "
    "latency from 2 s to 40 ms."
)


@pytest.fixture(scope="module")
def server(database_urls: DatabaseUrls, storage: Storage) -> Iterator[DevServer]:
    """`langgraph dev` on the test database (its bank seeded by the `storage` fixture)."""
    with langgraph_dev(database_urls.sqlalchemy) as running:
        yield running


def pending_interrupts(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for task in state["tasks"] for i in task.get("interrupts", [])]


async def test_studio_schemas_show_the_input_and_context_forms(server: DevServer) -> None:
    (assistant,) = await get_client(url=server.url).assistants.search(graph_id="turnjudge")
    response = httpx.get(f"{server.url}/assistants/{assistant['assistant_id']}/schemas", timeout=30)
    assert response.status_code == 200, response.text
    schemas = response.json()
    # langgraph-api turns a schema it cannot build into null (and logs a warning).
    assert all(
        schemas[k] is not None
        for k in ("input_schema", "output_schema", "state_schema", "context_schema")
    ), schemas
    assert set(schemas["input_schema"]["properties"]) == INPUT_FIELDS
    assert schemas["input_schema"]["properties"]["max_turns"]["default"] == 5
    context = schemas["context_schema"]
    assert set(context["properties"]) == CONTEXT_FIELDS
    assert all(field.get("description") for field in context["properties"].values())
    assert context["$defs"]["JudgeKind"]["enum"] == ["auto", "llm", "heuristic"]
    assert {"turns", "turn_evaluations", "holistic", "status"} <= set(
        schemas["state_schema"]["properties"]
    )


async def test_first_question_at_once_then_an_interview_through_its_interrupt(
    server: DevServer,
) -> None:
    client = get_client(url=server.url)
    thread = await client.threads.create()
    started = time.perf_counter()
    await client.runs.wait(
        thread["thread_id"],
        "turnjudge",
        input={"participant_id": "studio", "position": "backend", "max_turns": 1},
    )
    first_question_s = time.perf_counter() - started
    state = await client.threads.get_state(thread["thread_id"])
    (interrupt,) = pending_interrupts(state)
    assert interrupt["value"]["turn"] == 1 and interrupt["value"]["question"]
    print(
        f"langgraph dev: ready in {server.ready_s:.1f} s, "
        f"first question {first_question_s:.2f} s after the run started"
    )
    # The services were built while the server started: the run only asks. 5 s is the
    # documented target (benchmarks/bench_studio.py); this bound only catches a regression
    # to building services inside the first run (13.6 s before the Studio app warmed them).
    assert first_question_s < 5.0, first_question_s
    final = await client.runs.wait(thread["thread_id"], "turnjudge", command={"resume": ANSWER})
    assert isinstance(final, dict) and final["status"] == "completed", final
    assert final["holistic"]["score"] >= 0


async def test_the_context_form_configures_the_run(server: DevServer) -> None:
    client = get_client(url=server.url)
    thread = await client.threads.create()
    await client.runs.wait(
        thread["thread_id"],
        "turnjudge",
        input={
            "participant_id": "studio-ctx",
            "position": "devops",
            "max_turns": 1,
            "language": "ko",
        },
        context={"judge": "heuristic", "llm_max_concurrency": 2},
    )
    state = await client.threads.get_state(thread["thread_id"])
    (interrupt,) = pending_interrupts(state)
    assert interrupt["value"]["turn"] == 1
    refused = await client.runs.wait(
        (await client.threads.create())["thread_id"],
        "turnjudge",
        input={"participant_id": "studio-ctx"},
        context={"judge": "oracle"},
        raise_error=False,
    )
    assert isinstance(refused, dict)
    assert refused["__error__"]["error"] == "ValidationError", refused
    assert "judge" in refused["__error__"]["message"], refused


async def test_typed_errors_reach_studio_with_their_message(server: DevServer) -> None:
    client = get_client(url=server.url)
    result = await client.runs.wait(
        (await client.threads.create())["thread_id"],
        "turnjudge",
        input={"participant_id": "studio", "position": "astronaut"},
        raise_error=False,
    )
    assert isinstance(result, dict)
    error = result["__error__"]
    assert error["error"] == "UnknownPositionError", error
    assert "astronaut" in error["message"] and "backend" in error["message"], error
