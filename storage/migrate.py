"""Run Alembic migrations from code (CLI `turnjudge migrate`, API start-up, tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import NullPool, create_engine

from storage.database import DatabaseUrls, resolve_urls
from storage.settings import PROJECT_ROOT, StorageSettings

#: A database to migrate: its `DatabaseUrls`, any accepted URL (then in DB_SCHEMA), or None
#: for the configured one.
Target = DatabaseUrls | str | None


def alembic_config() -> Config:
    """The project's Alembic config (script location resolved from the installed package)."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return config


def target_urls(target: Target) -> DatabaseUrls:
    """The `DatabaseUrls` of `target` (see `Target`)."""
    if isinstance(target, DatabaseUrls):
        return target
    settings = StorageSettings()  # read when migrating, never at import
    if target is None:
        return resolve_urls(settings)
    return DatabaseUrls.from_url(target, settings.db_schema)


@contextmanager
def _connected_config(target: Target) -> Iterator[Config]:
    """An Alembic config carrying an open synchronous (psycopg) connection to `target`.

    Programmatic migrations run in worker threads of async servers; a synchronous driver
    keeps them free of a second event loop. The connection is opened from the libpq URL, so
    its search_path (DB_SCHEMA) and libpq parameters apply as they do for every other client.
    The same env.py serves the `alembic` command line with asyncpg.
    """
    urls = target_urls(target)
    engine = create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(urls.libpq), poolclass=NullPool
    )
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            config.attributes["schema"] = urls.schema
            yield config
    finally:
        engine.dispose()


def upgrade(url: Target = None, revision: str = "head") -> None:
    """`alembic upgrade` (blocking)."""
    with _connected_config(url) as config:
        command.upgrade(config, revision)


def downgrade(url: Target = None, revision: str = "base") -> None:
    """`alembic downgrade` (blocking)."""
    with _connected_config(url) as config:
        command.downgrade(config, revision)


def check(url: Target = None) -> None:
    """`alembic check`: raises if the models and the migrations disagree."""
    with _connected_config(url) as config:
        command.check(config)


async def aupgrade(url: Target = None, revision: str = "head") -> None:
    """`upgrade` in a worker thread, for callers inside an event loop."""
    await asyncio.to_thread(upgrade, url, revision)
