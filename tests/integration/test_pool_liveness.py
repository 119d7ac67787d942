"""Pooled connections the server dropped are replaced on checkout, with one round trip each.

`storage.database.ping_on_checkout` stands in for SQLAlchemy's `pool_pre_ping` (seed 001
§6.1): a connection that died while idle in the pool must never fail the next unit of work.
Real embedded PostgreSQL; the connection is really terminated by the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from api.settings import Settings
from storage.database import Database, DatabaseUrls, create_engine

pytestmark = pytest.mark.integration


@pytest.fixture
async def one_connection(
    settings: Settings, database_urls: DatabaseUrls
) -> AsyncIterator[Database]:
    """A database handle whose pool holds a single connection."""
    engine = create_engine(settings, database_urls, pool_size=1, max_overflow=0)
    database = Database(engine, database_urls)
    yield database
    await database.dispose()


async def test_a_connection_the_server_dropped_is_replaced_on_checkout(
    one_connection: Database, db: Database
) -> None:
    async with one_connection.connection() as c:
        dropped = await c.scalar(text("SELECT pg_backend_pid()"))
    async with db.connection() as other:  # the server ends it while it idles in the pool
        assert await other.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
    async with one_connection.connection() as c:  # the only pooled connection: dead, replaced
        replaced = await c.scalar(text("SELECT pg_backend_pid()"))
    assert replaced != dropped


async def test_a_live_pooled_connection_is_checked_with_one_statement(
    one_connection: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with one_connection.connection() as c:  # opened (not pinged), back to the pool
        opened = await c.scalar(text("SELECT pg_backend_pid()"))
    sent: list[str] = []
    execute = asyncpg.connection.Connection.execute

    async def counting(self: asyncpg.Connection, query: str, *args: object, **kw: object) -> str:
        sent.append(query)
        return await execute(self, query, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncpg.connection.Connection, "execute", counting)
    async with one_connection.connection() as c:
        reused = await c.scalar(text("SELECT pg_backend_pid()"))
    assert reused == opened  # the ping succeeded: the live connection was kept, not replaced
    # The ping, then the unit of work's own BEGIN and COMMIT: no BEGIN/ROLLBACK around it.
    assert sent[0] == "SELECT 1" and sent.count("SELECT 1") == 1
    assert not any(query.startswith("ROLLBACK") for query in sent), sent
