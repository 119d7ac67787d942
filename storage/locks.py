"""One writer per session: a PostgreSQL advisory lock, shared by every process.

Every graph run that changes a session (an answer, a resumed crash, a submission) holds the
session's lock for its whole duration, so two runs of one session never interleave: a second
submission waits, then finds the session closed and returns the stored report, and no item is
judged twice. The lock is transaction-scoped (`pg_advisory_xact_lock`) on a dedicated
connection: PostgreSQL releases it when the transaction ends, when the connection closes, or
when the process dies, so a crash can never leave a session locked.

The lock's connections come from a pool of their own (`Database.lock_engine`), never the
engine's: taking them from the engine's pool would let many sessions locked at once drain the
connections their own runs need, and wait forever. That pool keeps a few connections open (a
submission no longer opens a new PostgreSQL connection, with asyncpg's set-up round trips,
each time) and has no upper bound, so a lock never waits for a connection either. Waiters
of the same process queue on an `asyncio.Lock` first, so a burst of N identical requests
holds one lock connection, not N.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import bindparam, text
from sqlalchemy.types import String

from storage.database import Database

#: Namespace so the lock keys of sessions never collide with other users of advisory locks.
_LOCK_SQL = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))").bindparams(
    bindparam("key", type_=String())
)


class SessionLocks:
    """`async with locks.hold(session_id):` — exclusive, across processes, per session."""

    def __init__(self, db: Database) -> None:
        self._engine = db.lock_engine()  # its own pool, unbounded, disposed with `db`
        self._local: dict[uuid.UUID, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, session_id: uuid.UUID) -> AsyncIterator[None]:
        """Hold the session's lock while the block runs (waits for the current holder)."""
        lock, users = self._local.get(session_id, (asyncio.Lock(), 0))
        self._local[session_id] = (lock, users + 1)
        try:
            async with lock, self._engine.connect() as conn, conn.begin():
                await conn.execute(_LOCK_SQL, {"key": f"turnjudge.session:{session_id}"})
                yield  # the transaction (and the lock) ends when the block does
        finally:
            lock, users = self._local[session_id]
            if users <= 1:
                del self._local[session_id]
            else:
                self._local[session_id] = (lock, users - 1)
