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

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.embedded import ensure_database, start_embedded_server
from storage.settings import Settings


@dataclass(frozen=True)
class DatabaseUrls:
    """The same database, addressed for SQLAlchemy/asyncpg and for psycopg (checkpointer)."""

    sqlalchemy: str
    libpq: str


def resolve_urls(settings: Settings) -> DatabaseUrls:
    """Return the configured database, starting the embedded server when none is configured.

    Blocking: async callers use `aresolve_urls`.
    """
    if settings.database_url is not None:
        url = make_url(settings.database_url)
        libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return DatabaseUrls(sqlalchemy=settings.database_url, libpq=libpq)
    server = start_embedded_server(settings.data_dir)
    ensure_database(server, settings.database_name)
    return DatabaseUrls(
        sqlalchemy=server.sqlalchemy_url(settings.database_name),
        libpq=server.libpq_url(settings.database_name),
    )


async def aresolve_urls(settings: Settings) -> DatabaseUrls:
    """`resolve_urls` off the event loop (pgserver start-up blocks for up to a second)."""
    return await asyncio.to_thread(resolve_urls, settings)


def create_engine(settings: Settings, url: str) -> AsyncEngine:
    """An asyncpg engine with the pool standards of seed 001 §2.2."""
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_recycle=settings.db_pool_recycle,
        pool_pre_ping=True,
        echo=settings.db_echo,
    )


class Database:
    """One engine + session factory; the unit of work is `async with db.transaction()`."""

    def __init__(self, engine: AsyncEngine, urls: DatabaseUrls) -> None:
        self.engine = engine
        self.urls = urls
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    async def connect(cls, settings: Settings) -> Database:
        """Resolve the database (embedded or configured) and build the engine."""
        urls = await aresolve_urls(settings)
        return cls(create_engine(settings, urls.sqlalchemy), urls)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on any error."""
        async with self.sessionmaker.begin() as session:
            yield session

    async def session(self) -> AsyncIterator[AsyncSession]:
        """FastAPI dependency: one session per request, committed when the handler succeeds."""
        async with self.transaction() as session:
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
