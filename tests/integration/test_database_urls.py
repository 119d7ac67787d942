"""DATABASE_URL in the forms teams bring, end to end on the embedded PostgreSQL.

A `postgresql://` URL (what hosting providers hand out), seed 001's `postgresql+psycopg://`
and `postgres://` each point at a brand-new database: settings accept it, storage connects
(asyncpg), migrations run (psycopg), a session and its evaluations are saved and read back,
the LangGraph checkpointer sets up (psycopg), and libpq parameters reach both drivers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text

from api.settings import Settings
from nodes.judges.settings import JudgeKind
from storage.checkpoints import open_checkpointer
from storage.database import Database
from storage.embedded import EmbeddedServer, drop_database, ensure_database
from storage.embeddings import Embedder
from storage.migrate import aupgrade
from storage.services import Storage
from storage.sessions import TranscriptTurn

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_database(embedded_server: EmbeddedServer) -> Iterator[str]:
    name = f"turnjudge_urls_{uuid.uuid4().hex[:12]}"
    ensure_database(embedded_server, name)
    try:
        yield name
    finally:
        drop_database(embedded_server, name)


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg", "postgres"])
async def test_a_libpq_style_url_works_end_to_end(
    scheme: str, fresh_database: str, embedded_server: EmbeddedServer, embedder: Embedder
) -> None:
    url = (
        f"{scheme}://postgres@/{fresh_database}?host={embedded_server.socket_dir}"
        "&sslmode=disable&application_name=turnjudge-e2e&connect_timeout=5"
    )
    settings = Settings(_env_file=None, database_url=url, judge=JudgeKind.HEURISTIC)  # type: ignore[call-arg]
    assert settings.database_url == url

    db = await Database.connect(settings)
    try:
        assert db.urls.sqlalchemy.startswith("postgresql+asyncpg://")
        await aupgrade(db.urls)
        storage = Storage.from_database(db, embedder)

        session = await storage.sessions.create_session(
            participant_id="p-urls", position="backend", language="en", max_turns=1
        )
        await storage.sessions.save_transcript(
            session.id, [TranscriptTurn(question_text="Why?", answer_text="Because.")]
        )
        await storage.evaluations.save_turn_evaluation(
            session.id, 1, {"score": 70, "analysis": "fine"}
        )
        await storage.evaluations.save_holistic_evaluation(
            session.id, {"score": 65, "analysis": "flow"}
        )
        await storage.evaluations.close_session(session.id)
        saved = await storage.evaluations.list_evaluations(session.id)
        assert [e.details["score"] for e in saved] == [70, 65]

        # Both drivers got the libpq parameters: asyncpg through its DSN keyword.
        async with db.transaction() as s:
            name = await s.scalar(text("SELECT current_setting('application_name')"))
        assert name == "turnjudge-e2e"
        with psycopg.connect(db.urls.libpq) as conn:
            row = conn.execute("SELECT current_setting('application_name')").fetchone()
            assert row == ("turnjudge-e2e",)
            ended = conn.execute(
                "SELECT ended_at IS NOT NULL FROM prompt_sessions WHERE id = %s", (session.id,)
            ).fetchone()
            assert ended == (True,)

        async with open_checkpointer(db.urls.libpq) as saver:
            assert await saver.aget_tuple({"configurable": {"thread_id": "none"}}) is None
    finally:
        await db.dispose()


async def test_an_asyncpg_url_with_ssl_keyword_works(
    fresh_database: str, embedded_server: EmbeddedServer
) -> None:
    """The form SQLAlchemy users write, with asyncpg's own `ssl` keyword."""
    url = (
        f"postgresql+asyncpg://postgres@/{fresh_database}?host={embedded_server.socket_dir}"
        "&ssl=disable&prepared_statement_cache_size=0"
    )
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    db = await Database.connect(settings)
    try:
        await aupgrade(db.urls)
        async with db.transaction() as s:
            assert await s.scalar(text("SELECT count(*) FROM prompt_sessions")) == 0
        with psycopg.connect(db.urls.libpq) as conn:
            assert conn.info.dbname == fresh_database
    finally:
        await db.dispose()


def test_a_refused_url_never_reaches_a_driver() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL"):
        Settings(_env_file=None, database_url="mysql://root@localhost/app")  # type: ignore[call-arg]
