"""LangGraph's PostgreSQL checkpointer, on the same database as everything else.

Durable interrupts: with thread_id = session id, an interview interrupted in one process
resumes in another. The checkpoint tables belong to LangGraph (created by `setup()`);
migrations/env.py ignores them so Alembic never sees them as drift.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


@asynccontextmanager
async def open_checkpointer(
    libpq_url: str, max_size: int = 10
) -> AsyncIterator[AsyncPostgresSaver]:
    """A pooled `AsyncPostgresSaver` with its tables set up; the pool closes on exit."""
    async with AsyncConnectionPool(
        libpq_url,
        min_size=1,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    ) as pool:
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        await saver.setup()
        yield saver
