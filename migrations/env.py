"""Async Alembic environment.

The URL comes from turnjudge's settings (the embedded PostgreSQL when DATABASE_URL is unset)
unless the caller put one in the Alembic config (`sqlalchemy.url`). `storage.migrate` instead
hands over an open synchronous connection (`config.attributes["connection"]`): it runs inside
servers' worker threads, where starting a second event loop would trip `langgraph dev`'s
blocking-call detector. Only turnjudge's own tables are compared: LangGraph's checkpoint tables
may live in the same database and must not look like drift.

With DB_SCHEMA the schema is created if missing and holds Alembic's version table; everything
else lands there through the connection's search_path (set by both URLs), so migrations never
name a schema and work unchanged with or without one.
"""

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection

from storage.database import DatabaseUrls, create_engine, resolve_urls
from storage.models import Base
from storage.settings import StorageSettings
from storage.urls import quote_identifier, search_path

config = context.config
target_metadata = Base.metadata
OWN_TABLES = set(Base.metadata.tables)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Compare only turnjudge's tables (and everything inside them)."""
    if type_ == "table":
        return name in OWN_TABLES
    return True


def database_urls() -> DatabaseUrls:
    """The URL given by the caller (`sqlalchemy.url`, any accepted form), else settings'."""
    settings = StorageSettings()
    url = config.get_main_option("sqlalchemy.url")
    return DatabaseUrls.from_url(url, settings.db_schema) if url else resolve_urls(settings)


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`alembic upgrade head --sql`)."""
    urls = database_urls()
    context.configure(
        url=urls.sqlalchemy,
        target_metadata=target_metadata,
        literal_binds=True,
        include_name=include_name,
        version_table_schema=urls.schema,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        if urls.schema is not None:
            context.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(urls.schema)}")
            context.execute(f"SET search_path TO {search_path(urls.schema)}")
        context.run_migrations()


def do_run_migrations(connection: Connection, schema: str | None) -> None:
    """Run the migrations on one connection, in the caller's transaction.

    Processes starting together on a fresh database (API replicas, workers) migrate one at a
    time: the others wait on the lock, then find the database at head.
    """
    connection.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('turnjudge.migrate', 0))")
    )
    if schema is not None:
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}"))
        # One pgvector per database, in public (behind the schema on the search_path): left to
        # the first migration it would land in the first schema migrated, invisible to others.
        if connection.scalar(text("SELECT 1 FROM pg_namespace WHERE nspname = 'public'")):
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public"))
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=include_name,
        version_table_schema=schema,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    """Connect with asyncpg (the `alembic` command line) and run the migrations."""
    urls = database_urls()
    engine = create_engine(StorageSettings(), urls, poolclass=pool.NullPool)
    async with engine.begin() as connection:
        await connection.run_sync(do_run_migrations, urls.schema)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
elif (shared_connection := config.attributes.get("connection")) is not None:
    do_run_migrations(shared_connection, config.attributes.get("schema"))
else:
    asyncio.run(run_async_migrations())
