"""Real `turnjudge worker` subprocesses and a loopback callback receiver, for queue tests.

Workers are started with `python -m api.cli worker` and an environment naming the test
database and the LLM stub; they are stopped (or killed) by their own PID only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """One `turnjudge worker` child process."""

    def __init__(self, env: Mapping[str, str], *, concurrency: int, log: Path) -> None:
        """Start the worker; its output goes to `log` (read it when a test fails)."""
        self.log = log
        self._handle = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "worker", "--concurrency", str(concurrency)],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            stdout=self._handle,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the child is still running."""
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up at all (a crashed machine)."""
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait for the exit status."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._handle.close()

    def tail(self, lines: int = 40) -> str:
        """The last lines of the worker's output."""
        text = self.log.read_text("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Delivery:
    """One POST the receiver got."""

    path: str
    body: bytes
    headers: dict[str, str]
    status: int


@dataclass
class CallbackReceiver:
    """HTTP server on 127.0.0.1 recording POSTs; `fail_first[path]` answers 503 that often."""

    fail_first: dict[str, int] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> CallbackReceiver:
        """Start serving in a thread."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    left = receiver.fail_first.get(self.path, 0)
                    status = 503 if left > 0 else 200
                    if left > 0:
                        receiver.fail_first[self.path] = left - 1
                    receiver.deliveries.append(
                        Delivery(self.path, body, dict(self.headers.items()), status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def url(self, path: str) -> str:
        """The receiver's URL for `path`."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def received(self, path: str) -> list[Delivery]:
        """The POSTs to `path` so far."""
        with self._lock:
            return [d for d in self.deliveries if d.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 60) -> list[Delivery]:
        """Wait until `count` successful POSTs reached `path`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received(path)
            if sum(d.status == 200 for d in got) >= count:
                return got
            time.sleep(0.1)
        raise AssertionError(f"{path}: {json.dumps([d.status for d in self.received(path)])}")
