"""`langgraph dev` serves the exported graph offline; a thread runs through one interrupt."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from storage.database import DatabaseUrls
from storage.services import Storage

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def langgraph_server(database_urls: DatabaseUrls, storage: Storage) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_urls.sqlalchemy,
        "JUDGE": "heuristic",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
        "LANGSMITH_TRACING": "false",
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    langgraph = Path(sys.executable).with_name("langgraph")
    log = (ROOT / ".langgraph_api").resolve()
    log.mkdir(exist_ok=True)
    with open(log / "test-server.log", "w") as output:
        process = subprocess.Popen(
            [str(langgraph), "dev", "--port", str(port), "--host", "127.0.0.1",
             "--no-browser", "--no-reload", "--config", str(ROOT / "langgraph.json")],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, (log / "test-server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("langgraph dev did not start: " + (log / "test-server.log").read_text())
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and its worker, by our own PID
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def test_langgraph_dev_runs_through_an_interrupt(langgraph_server: str) -> None:
    client = get_client(url=langgraph_server)
    assistants = await client.assistants.search(graph_id="turnjudge")
    assert assistants, "the graph named in langgraph.json is not served"
    thread = await client.threads.create()
    await client.runs.wait(
        thread["thread_id"], "turnjudge",
        input={"participant_id": "studio", "position": "backend", "max_turns": 1},
    )
    state = await client.threads.get_state(thread["thread_id"])
    interrupts = [i for task in state["tasks"] for i in task.get("interrupts", [])]
    assert interrupts and interrupts[0]["value"]["turn"] == 1
    final = await client.runs.wait(
        thread["thread_id"], "turnjudge",
        command={"resume": "I would add a composite index and check the query plan; "
                           "in my last job that cut latency from 2 s to 40 ms."},
    )
    assert isinstance(final, dict) and final["status"] == "completed", final
    assert final["holistic"]["score"] >= 0
