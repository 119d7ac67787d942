"""Run Alembic migrations from code (CLI `turnjudge migrate`, API start-up, tests)."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.config import Config

from storage.settings import PROJECT_ROOT


def alembic_config(url: str | None = None) -> Config:
    """The project's Alembic config, pointed at `url` when given."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if url is not None:
        # ConfigParser interpolation: a literal % must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """`alembic upgrade` (blocking: env.py runs its own event loop)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """`alembic downgrade` (blocking)."""
    command.downgrade(alembic_config(url), revision)


def check(url: str | None = None) -> None:
    """`alembic check`: raises if the models and the migrations disagree."""
    command.check(alembic_config(url))


async def aupgrade(url: str | None = None, revision: str = "head") -> None:
    """`upgrade` in a worker thread, for callers inside an event loop."""
    await asyncio.to_thread(upgrade, url, revision)
