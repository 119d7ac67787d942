"""Async Alembic environment.

The URL comes from turnjudge's settings (the embedded PostgreSQL when DATABASE_URL is unset)
unless the caller put one in the Alembic config (`sqlalchemy.url`). `storage.migrate` instead
hands over an open synchronous connection (`config.attributes["connection"]`): it runs inside
servers' worker threads, where starting a second event loop would trip `langgraph dev`'s
blocking-call detector. Only turnjudge's own tables are compared: LangGraph's checkpoint tables
may live in the same database and must not look like drift.
"""

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

from storage.database import resolve_urls
from storage.models import Base
from storage.settings import get_settings

config = context.config
target_metadata = Base.metadata
OWN_TABLES = set(Base.metadata.tables)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Compare only turnjudge's tables (and everything inside them)."""
    if type_ == "table":
        return name in OWN_TABLES
    return True


def database_url() -> str:
    """The URL given by the caller, else the one from settings."""
    url = config.get_main_option("sqlalchemy.url")
    return url or resolve_urls(get_settings()).sqlalchemy


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`alembic upgrade head --sql`)."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        include_name=include_name,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations on one connection, in one transaction."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=include_name,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    """Connect with asyncpg and run the migrations."""
    section = config.get_section(config.config_ini_section, {})
    section["sqlalchemy.url"] = database_url()
    engine = async_engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
elif (shared_connection := config.attributes.get("connection")) is not None:
    do_run_migrations(shared_connection)
else:
    asyncio.run(run_async_migrations())
