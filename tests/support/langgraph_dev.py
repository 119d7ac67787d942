"""`langgraph dev` in a subprocess, offline, on a free loopback port (tests and benchmarks).

The server runs the graph of `langgraph.json` with its Studio app (graph/studio.py), on the
database given by `database_url`, with the offline judge. It is stopped by its own process
group id (the server and its worker), never by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / ".langgraph_api"


def free_port() -> int:
    """A TCP port free on loopback now (2024, the default, is taken on these machines)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class DevServer:
    """A running `langgraph dev`: its URL and how long it took to answer `/ok`."""

    url: str
    ready_s: float
    log: Path


def offline_env(database_url: str) -> dict[str, str]:
    """The environment of an offline server on `database_url` with the heuristic judge."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JUDGE": "heuristic",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
        "LANGSMITH_TRACING": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    return env


@contextmanager
def langgraph_dev(database_url: str, *, timeout_s: float = 120) -> Iterator[DevServer]:
    """Start `langgraph dev --no-reload`, wait until it answers, stop it on exit."""
    port = free_port()
    langgraph = Path(sys.executable).with_name("langgraph")
    LOG_DIR.mkdir(exist_ok=True)
    log = LOG_DIR / f"dev-server-{port}.log"
    started = time.perf_counter()
    with open(log, "w") as output:
        process = subprocess.Popen(
            [
                str(langgraph),
                "dev",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--no-browser",
                "--no-reload",
                "--config",
                str(ROOT / "langgraph.json"),
            ],
            cwd=ROOT,
            env=offline_env(database_url),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError("langgraph dev exited:\n" + log.read_text()[-3000:])
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError("langgraph dev did not start:\n" + log.read_text()[-3000:])
            try:
                if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield DevServer(url=url, ready_s=time.perf_counter() - started, log=log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and its worker, by our own PID
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
