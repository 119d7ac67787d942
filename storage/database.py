"""Engine and session factory, built from settings (never at import time).

`Database` owns one async engine and its `async_sessionmaker`; whoever creates it (the API
lifespan, the CLI, a notebook, a test fixture) disposes it. With `DATABASE_URL` unset it first
starts or attaches to the embedded PostgreSQL server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import NullPool, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.embedded import ensure_database, start_embedded_server
from storage.settings import StorageSettings
from storage.urls import (
    NUMERIC_KEYWORDS,
    check_schema_name,
    parse_database_url,
    with_search_path,
)

#: Session-lock connections kept open between holds (`Database.lock_engine`): as many as the
#: default engine pool serves runs (DB_POOL_SIZE), so a burst of that many submissions locks
#: without opening connections (asyncpg's set-up round trips: 1.06 -> 0.70 ms of CPU per lock
#: with 20 at once, measured when 4 were kept).
IDLE_LOCK_CONNECTIONS = 20


#: Marks a pooled connection opened for the checkout under way (`ping_on_checkout`).
_JUST_OPENED = "turnjudge_just_opened"


def ping_on_checkout(engine: AsyncEngine) -> AsyncEngine:
    """Check every connection the pool hands out with one round trip; replace it if dead.

    What `pool_pre_ping=True` does (seed 001 §6.1: connections the server or the network
    dropped while idle are replaced, not failed on), in a third of the round trips:
    SQLAlchemy's asyncpg dialect pings inside a transaction (BEGIN, a prepared `;`,
    ROLLBACK), for pgbouncer's transaction mode. `SELECT 1` sent with asyncpg's simple query
    protocol prepares nothing, so it is as safe there, and one round trip. (Not `;`: its
    empty reply has no command tag, which asyncpg's `execute` cannot read.) The pings were
    7-13% of the client's CPU on the evaluation path (py-spy, 20 sessions x 8 turns).
    Raising `DisconnectionError` from a checkout listener makes the pool discard the
    connection and hand out a fresh one (SQLAlchemy's documented pessimistic recipe). A
    connection opened for this very checkout is not pinged (nor was it by pre-ping).
    """

    def opened(_dbapi_connection: Any, record: Any) -> None:
        record.info[_JUST_OPENED] = True

    def ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.pop(_JUST_OPENED, False):
            return
        try:
            dbapi_connection.run_async(lambda driver: driver.execute("SELECT 1"))
        except Exception as exc:  # closed, reset, server gone: any of asyncpg's errors
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc

    event.listen(engine.sync_engine, "connect", opened)
    event.listen(engine.sync_engine, "checkout", ping)
    return engine


@dataclass(frozen=True)
class DatabaseUrls:
    """The same database (and schema) addressed for SQLAlchemy/asyncpg and for libpq.

    Built once by `from_url` from any accepted DATABASE_URL form; both URLs carry the schema's
    search_path, so every client of either one (the services, the checkpointer, the job queue,
    psql) reads and writes turnjudge's tables in `schema`.
    """

    sqlalchemy: str
    libpq: str
    schema: str | None = None

    @classmethod
    def from_url(cls, url: str, schema: str | None = None) -> DatabaseUrls:
        """Normalise `url` (postgresql://, postgres://, +psycopg or +asyncpg) for both drivers.

        Raises `DatabaseUrlError` for anything else.
        """
        parsed = parse_database_url(url)
        if schema is not None:
            parsed = with_search_path(parsed, check_schema_name(schema))
        return cls(sqlalchemy=parsed.asyncpg(), libpq=parsed.libpq(), schema=schema)


def resolve_urls(settings: StorageSettings) -> DatabaseUrls:
    """Return the configured database, starting the embedded server when none is configured.

    Blocking: async callers use `aresolve_urls`.
    """
    if settings.database_url is not None:
        return DatabaseUrls.from_url(settings.database_url, settings.db_schema)
    server = start_embedded_server(settings.data_dir)
    ensure_database(server, settings.database_name)
    return DatabaseUrls.from_url(server.libpq_url(settings.database_name), settings.db_schema)


async def aresolve_urls(settings: StorageSettings) -> DatabaseUrls:
    """`resolve_urls` off the event loop (pgserver start-up blocks for up to a second)."""
    return await asyncio.to_thread(resolve_urls, settings)


def asyncpg_connect_args(url: str) -> dict[str, Any]:
    """Numeric keywords of an asyncpg URL as numbers (SQLAlchemy hands the query over as text)."""
    query = make_url(url).query
    args: dict[str, Any] = {}
    for key, kind in NUMERIC_KEYWORDS.items():
        if key == "prepared_statement_cache_size":
            continue  # SQLAlchemy's own dialect option: it converts it itself
        if isinstance(value := query.get(key), str):
            args[key] = kind(value)
    return args


def create_engine(
    settings: StorageSettings, target: DatabaseUrls | str, **options: Any
) -> AsyncEngine:
    """An asyncpg engine with the pool standards of seed 001 §2.2.

    `target` is a `DatabaseUrls` or any accepted URL (then in `settings.db_schema`); `options`
    override the engine's (e.g. `poolclass=NullPool` for one-off connections).
    """
    urls = (
        target
        if isinstance(target, DatabaseUrls)
        else DatabaseUrls.from_url(target, settings.db_schema)
    )
    engine_options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_recycle": settings.db_pool_recycle,
        "echo": settings.db_echo,
        "connect_args": asyncpg_connect_args(urls.sqlalchemy),
    }
    if options.get("poolclass") is NullPool:
        for key in ("pool_size", "max_overflow", "pool_recycle"):
            engine_options.pop(key)
    engine_options.update(options)
    return ping_on_checkout(create_async_engine(urls.sqlalchemy, **engine_options))


class Database:
    """One engine + session factory; the unit of work is `async with db.transaction()`."""

    def __init__(self, engine: AsyncEngine, urls: DatabaseUrls) -> None:
        self.engine = engine
        self.urls = urls
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        self._lock_engine: AsyncEngine | None = None

    def lock_engine(self) -> AsyncEngine:
        """A second engine on the same database for session locks (`storage.locks`).

        Its own pool, never the main one: a lock held for a whole graph run must not take a
        connection the run itself needs. It keeps `IDLE_LOCK_CONNECTIONS` open and has no
        upper bound (max_overflow=-1), so taking a lock never waits for a connection.
        Disposed with the database.
        """
        if self._lock_engine is None:
            self._lock_engine = ping_on_checkout(
                create_async_engine(
                    self.urls.sqlalchemy,
                    pool_size=IDLE_LOCK_CONNECTIONS,
                    max_overflow=-1,
                    connect_args=asyncpg_connect_args(self.urls.sqlalchemy),
                )
            )
        return self._lock_engine

    @classmethod
    async def connect(cls, settings: StorageSettings) -> Database:
        """Resolve the database (embedded or configured) and build the engine."""
        urls = await aresolve_urls(settings)
        return cls(create_engine(settings, urls), urls)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on any error."""
        async with self.sessionmaker.begin() as session:
            yield session

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection in a transaction (committed on success, rolled back on error).

        For the hot paths that only run Core statements: no ORM session, no identity map,
        one pooled connection for the whole unit of work.
        """
        async with self.engine.begin() as connection:
            yield connection

    async def session(self) -> AsyncIterator[AsyncSession]:
        """FastAPI dependency: one session per request, committed when the handler succeeds."""
        async with self.transaction() as session:
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection (the lock engine's too)."""
        if self._lock_engine is not None:
            await self._lock_engine.dispose()
            self._lock_engine = None
        await self.engine.dispose()
