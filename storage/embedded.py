"""The embedded default database: a real PostgreSQL 16 + pgvector from the `pgserver` wheel.

It is run as a managed service, not tied to one process: the first user starts it in the data
directory, later users (the API, `langgraph dev`, a notebook, the tests) attach to the same
server, and `turnjudge db stop` stops it. pgserver's own "stop when the last holder exits"
bookkeeping leaks whenever a holder dies without its atexit hook (SIGKILL, multiprocessing
children), so it is switched off (`cleanup_mode=None`) and stopping is explicit.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"
#: Several processes share the server (API, `langgraph dev`, notebooks, tests), each with a
#: pool of up to DB_POOL_SIZE + DB_MAX_OVERFLOW (30) connections; PostgreSQL's default is 100.
MAX_CONNECTIONS = 300


class EmbeddedDatabaseError(RuntimeError):
    """The embedded PostgreSQL server could not be started or reached."""


@dataclass(frozen=True)
class EmbeddedServer:
    """Where a running embedded server listens (unix socket only, no TCP)."""

    data_dir: Path
    socket_dir: Path

    def sqlalchemy_url(self, database: str) -> str:
        """URL for SQLAlchemy + asyncpg."""
        return f"postgresql+asyncpg://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def libpq_url(self, database: str) -> str:
        """URL for psycopg (the LangGraph checkpointer) and psql."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}"


def start_embedded_server(data_dir: Path) -> EmbeddedServer:
    """Start the server in `data_dir`, or attach to the one already running there.

    Blocking (initdb takes about 0.6 s cold); async callers wrap it in `asyncio.to_thread`.
    """
    from pgserver.postgres_server import get_server  # lazily: only embedded mode needs it

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    fresh = not (data_dir / "PG_VERSION").exists()
    try:
        server = get_server(data_dir, cleanup_mode=None)
    except (subprocess.SubprocessError, OSError, AssertionError) as exc:
        log = data_dir / "log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        raise EmbeddedDatabaseError(
            f"could not start the embedded PostgreSQL in {data_dir}: {exc}\n{tail}"
        ) from exc
    socket_dir = server.get_postmaster_info().socket_dir
    if socket_dir is None:
        raise EmbeddedDatabaseError(f"the embedded PostgreSQL in {data_dir} has no unix socket")
    embedded = EmbeddedServer(data_dir=data_dir, socket_dir=Path(socket_dir))
    _raise_max_connections(embedded, restart=fresh)
    return embedded


def _pg_ctl(args: list[str], data_dir: Path) -> None:
    from pgserver import _commands

    pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009  (generated at import by pgserver)
    pg_ctl(args, pgdata=data_dir, user="pgserver" if os.geteuid() == 0 else None)


def _raise_max_connections(server: EmbeddedServer, *, restart: bool) -> None:
    """Persist max_connections = MAX_CONNECTIONS; restart only a server nobody uses yet.

    A server already shared with other processes keeps running and picks the value up at
    its next start.
    """
    with psycopg.connect(server.libpq_url("postgres"), autocommit=True) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
        if row is None or int(row[0]) >= MAX_CONNECTIONS:
            return
        conn.execute(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}")
    if restart:
        _pg_ctl(["-w", "restart"], server.data_dir)


def ensure_database(server: EmbeddedServer, database: str) -> None:
    """Create `database` on the embedded server if it does not exist yet."""
    with psycopg.connect(server.libpq_url("postgres"), autocommit=True) as conn:
        query = "SELECT 1 FROM pg_database WHERE datname = %s"
        exists = conn.execute(query, (database,)).fetchone()
        if exists is None:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            except psycopg.errors.DuplicateDatabase:
                pass  # created concurrently by another process: fine
            logger.info("created database %s on the embedded server", database)


def drop_database(server: EmbeddedServer, database: str) -> None:
    """Drop `database` (used by the test suite for its throwaway databases)."""
    with psycopg.connect(server.libpq_url("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


@dataclass(frozen=True)
class EmbeddedStatus:
    """A running embedded server, as its `postmaster.pid` and the process table say."""

    data_dir: Path
    socket_dir: Path | None
    pid: int


def embedded_status(data_dir: Path) -> EmbeddedStatus | None:
    """The server running in `data_dir`, or None when none runs there (nothing is started)."""
    from pgserver.utils import PostmasterInfo

    data_dir = data_dir.resolve()
    if not (data_dir / "postmaster.pid").exists():
        return None
    info = PostmasterInfo.read_from_pgdata(data_dir)
    if info is None or not info.is_running():
        return None
    return EmbeddedStatus(data_dir=data_dir, socket_dir=info.socket_dir, pid=info.pid)


def stop_embedded_server(data_dir: Path) -> bool:
    """Stop the server running in `data_dir`; return False when none was running."""
    from pgserver.utils import PostmasterInfo

    data_dir = data_dir.resolve()
    info = PostmasterInfo.read_from_pgdata(data_dir)
    if info is None or not info.is_running():
        return False
    _pg_ctl(["-w", "-m", "fast", "stop"], data_dir)
    # Forget holders recorded by pgserver: they refer to the server just stopped.
    pid_file = data_dir / ".handle_pids.json"
    if pid_file.exists():
        pid_file.write_text("[]")
    return True
