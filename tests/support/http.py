"""Helpers of the HTTP-contract tests: an app client, table counts, the error model check."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from api.app import create_app
from api.errors import ErrorOut
from api.settings import Settings
from nodes.judges.settings import JudgeKind
from storage.services import Storage

KEY_A = "acme-key-0123456789abcdef"
KEY_B = "globex-key-0123456789abcdef"
KEY_DEFAULT = "plain-key-0123456789abcdef"
HEADERS_A = {"X-API-Key": KEY_A}
HEADERS_B = {"X-API-Key": KEY_B}

#: Every table a request could touch: turnjudge's and LangGraph's checkpoint tables.
TABLES = (
    "prompt_sessions",
    "prompt_messages",
    "prompt_evaluations",
    "questions",
    "checkpoints",
    "checkpoint_writes",
    "checkpoint_blobs",
)

ANSWER = (
    "In my last project I built the payments API on PostgreSQL; idempotency keys with a unique "
    "index and INSERT ON CONFLICT removed duplicate charges, and p95 latency fell to 90 ms."
)


def tenant_settings(**overrides: Any) -> Settings:
    """Offline settings with three keys: tenants acme, globex and default."""
    values: dict[str, Any] = {
        "judge": JudgeKind.HEURISTIC,
        "api_keys": f"acme:{KEY_A},globex:{KEY_B},{KEY_DEFAULT}",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def app_client(
    storage: Storage, settings: Settings
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app (lifespan run) and an httpx client speaking ASGI to it.

    `raise_app_exceptions=False`: an exception escaping the app must show as the response
    the app sends (a 500), which is what the contract is tested on.
    """
    app = create_app(settings, storage=storage)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", timeout=60
        ) as client:
            yield app, client


async def table_counts(storage: Storage) -> dict[str, int]:
    """Row count of every table in `TABLES`."""
    async with storage.db.engine.connect() as conn:
        counts = {}
        for table in TABLES:
            counts[table] = int(await conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
        return counts


def assert_error(
    response: httpx.Response, status: int | None = None, field: str | None = None
) -> ErrorOut:
    """The response is an error in the documented model (and of `status`, naming `field`)."""
    if status is None:
        assert response.status_code < 500 or response.status_code in (502, 503), response.text
    else:
        assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) <= {"error", "detail", "field"}, body
    error = ErrorOut.model_validate(body)
    assert error.error and error.detail
    assert len(response.content) < 1500, "an error quotes at most a short excerpt"
    if field is not None:
        assert error.field is not None and field in error.field, (field, body)
    return error


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served_api(
    database_url: str, env: dict[str, str] | None = None, timeout_s: float = 180.0
) -> Iterator[str]:
    """`turnjudge serve` in a subprocess on loopback against `database_url`; its base URL."""
    import os
    import subprocess
    import sys
    import tempfile
    import time

    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JUDGE": "heuristic",
        "API_KEYS": f"acme:{KEY_A},globex:{KEY_B}",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "LANGSMITH_TRACING": "false",
        **(env or {}),
    }
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"turnjudge serve exited: {log.read()[-3000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("turnjudge serve did not become healthy in time")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
