"""LangGraph's PostgreSQL checkpointer, on the same database as everything else.

Durable interrupts: with thread_id = session id, an interview interrupted in one process
resumes in another. The checkpoint tables belong to LangGraph (created by `setup()`);
migrations/env.py ignores them so Alembic never sees them as drift.

Deserialisation is allow-listed: the serializer is built with an explicit msgpack allowlist
(the types the caller names, e.g. the graph's state class, which travels inside `Send`
packets), to which compiling a graph adds the types of its state schema. LangGraph's default
(allow everything, warn "will be blocked in a future version") would otherwise strand stored
interviews after an upgrade that switches the default to strict.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

_SETUP_KEY = "hashtextextended('turnjudge.checkpointer.setup', 0)"
_SETUP_TRY_LOCK = f"SELECT 1 WHERE pg_try_advisory_lock({_SETUP_KEY})"
_SETUP_UNLOCK = f"SELECT pg_advisory_unlock({_SETUP_KEY})"


@asynccontextmanager
async def open_checkpointer(
    libpq_url: str, max_size: int = 10, allowed_types: Sequence[type] = ()
) -> AsyncIterator[AsyncPostgresSaver]:
    """A pooled `AsyncPostgresSaver` with its tables set up; the pool closes on exit.

    `allowed_types` are the application types checkpoints may hold besides LangGraph's own.
    """
    serde = JsonPlusSerializer(
        allowed_msgpack_modules=[(kind.__module__, kind.__name__) for kind in allowed_types]
    )
    async with AsyncConnectionPool(
        libpq_url,
        min_size=1,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    ) as pool:
        saver = AsyncPostgresSaver(pool, serde=serde)  # type: ignore[arg-type]
        # Processes starting together on a fresh database (API replicas, workers) would race
        # on CREATE TABLE IF NOT EXISTS (a duplicate type error): one sets up at a time. The
        # others poll instead of blocking: setup() ends with CREATE INDEX CONCURRENTLY, which
        # waits for every open statement, a blocked pg_advisory_lock() call included.
        async with pool.connection() as conn:
            while await (await conn.execute(_SETUP_TRY_LOCK)).fetchone() is None:
                await asyncio.sleep(0.05)
            try:
                await saver.setup()
            finally:
                await conn.execute(_SETUP_UNLOCK)
        yield saver
