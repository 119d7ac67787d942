"""Run Alembic migrations from code (CLI `turnjudge migrate`, API start-up, tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from sqlalchemy import NullPool, create_engine
from sqlalchemy.engine import make_url

from storage.database import resolve_urls
from storage.settings import PROJECT_ROOT, get_settings


def alembic_config() -> Config:
    """The project's Alembic config (script location resolved from the installed package)."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return config


@contextmanager
def _connected_config(url: str | None) -> Iterator[Config]:
    """An Alembic config carrying an open synchronous (psycopg) connection to `url`.

    Programmatic migrations run in worker threads of async servers; a synchronous driver
    keeps them free of a second event loop. The same env.py serves the `alembic` command
    line with asyncpg.
    """
    target = make_url(url or resolve_urls(get_settings()).sqlalchemy)
    engine = create_engine(target.set(drivername="postgresql+psycopg"), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            yield config
    finally:
        engine.dispose()


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """`alembic upgrade` (blocking)."""
    with _connected_config(url) as config:
        command.upgrade(config, revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """`alembic downgrade` (blocking)."""
    with _connected_config(url) as config:
        command.downgrade(config, revision)


def check(url: str | None = None) -> None:
    """`alembic check`: raises if the models and the migrations disagree."""
    with _connected_config(url) as config:
        command.check(config)


async def aupgrade(url: str | None = None, revision: str = "head") -> None:
    """`upgrade` in a worker thread, for callers inside an event loop."""
    await asyncio.to_thread(upgrade, url, revision)
