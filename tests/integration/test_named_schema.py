"""DB_SCHEMA: turnjudge's whole schema in a named PostgreSQL schema, nothing in `public`.

Migrations create the schema and everything in it (tables, the ENUM, indexes, Alembic's
version table), `alembic check` is clean there, two schemas and the default one share one
database without touching each other, the checkpointer's tables follow, and the storage suite
passes when run with DB_SCHEMA set (a child pytest run that ends with
`test_this_run_keeps_everything_in_its_schema`, which finds nothing in public).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from api.settings import Settings
from storage.checkpoints import open_checkpointer
from storage.database import Database, DatabaseUrls
from storage.embedded import EmbeddedServer, drop_database, ensure_database
from storage.migrate import check, downgrade, upgrade
from storage.models import Base
from storage.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

OWN_TABLES = set(Base.metadata.tables)
CHECKPOINT_TABLES = {"checkpoints", "checkpoint_blobs", "checkpoint_writes"}
#: procrastinate's tables (migration 0005): the job queue lives in the schema too.
QUEUE_TABLES = {"procrastinate_jobs", "procrastinate_workers", "procrastinate_events"}
#: The storage suite, run once more in a named schema by `test_storage_suite_in_a_named_schema`.
STORAGE_SUITE = (
    "tests/integration/test_evaluation_service.py",
    "tests/integration/test_schema_rules.py",
    "tests/integration/test_questions.py",  # the vector column and its HNSW index
    "tests/integration/test_migrations.py",  # upgrade / downgrade / `alembic check`
    "tests/integration/test_seed_queries.py",
    # The queue: 202 + stored job, refusals, and a real worker subprocess running a tenant's
    # job and its signed callback, all through the schema's search_path.
    "tests/integration/test_queue.py::test_queued_submission_is_stored_with_its_job_before_any_worker",
    "tests/integration/test_queue.py::test_invalid_queued_submission_stores_nothing",
    "tests/integration/test_queue.py::test_a_queued_session_belongs_to_its_tenant_and_signs_with_its_secret",
    "tests/integration/test_named_schema.py::test_this_run_keeps_everything_in_its_schema",
)
#: Compares a data file with seed 002's text, without a database: nothing a schema changes,
#: and skipped wherever the seeds are not beside the clone, which would fail the zero-skip
#: check below for a reason that has nothing to do with DB_SCHEMA.
SEED_FILE_CHECK = (
    "tests/integration/test_seed_queries.py::test_the_data_file_holds_the_seed_queries_verbatim"
)


@pytest.fixture
def empty_database(embedded_server: EmbeddedServer) -> Iterator[str]:
    """A brand-new database (its libpq URL), dropped after the test."""
    name = f"turnjudge_schema_{uuid.uuid4().hex[:12]}"
    ensure_database(embedded_server, name)
    try:
        yield embedded_server.libpq_url(name)
    finally:
        drop_database(embedded_server, name)


def objects_in(libpq_url: str, schema: str) -> dict[str, set[str]]:
    """Tables, types, indexes and constraints living in `schema` (names only)."""
    queries = {
        "tables": "SELECT tablename FROM pg_tables WHERE schemaname = %s",
        "types": "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
        " WHERE n.nspname = %s AND t.typtype = 'e'",
        "indexes": "SELECT indexname FROM pg_indexes WHERE schemaname = %s",
        "constraints": "SELECT conname FROM pg_constraint c"
        " JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = %s",
        "functions": "SELECT p.proname FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s",
    }
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        return {
            kind: {str(row[0]) for row in conn.execute(sql, (schema,)).fetchall()}  # type: ignore[arg-type]
            for kind, sql in queries.items()
        }


def assert_turnjudge_in(libpq_url: str, schema: str) -> None:
    found = objects_in(libpq_url, schema)
    assert OWN_TABLES | QUEUE_TABLES | {"alembic_version"} <= found["tables"]
    assert {"evaluation_type_enum", "procrastinate_job_status"} <= found["types"]
    assert "procrastinate_defer_jobs_v1" in found["functions"]
    assert {
        "uq_prompt_evaluations_turn_eval",
        "uq_prompt_evaluations_holistic_flow",
        "ix_questions_embedding_hnsw",
    } <= found["indexes"]
    assert "ck_prompt_evaluations_details_shape" in found["constraints"]


def assert_no_turnjudge_in(libpq_url: str, schema: str) -> None:
    found = objects_in(libpq_url, schema)
    assert (
        found["tables"] & (OWN_TABLES | CHECKPOINT_TABLES | QUEUE_TABLES | {"alembic_version"})
        == set()
    )
    assert not found["types"] & {"evaluation_type_enum", "procrastinate_job_status"}
    assert not any(name.startswith("procrastinate_") for name in found["functions"])
    assert not any(name.startswith(("uq_prompt", "ix_questions")) for name in found["indexes"])


def test_migrations_create_and_remove_everything_in_the_schema(empty_database: str) -> None:
    urls = DatabaseUrls.from_url(empty_database, schema="tj_alpha")
    upgrade(urls)
    assert_turnjudge_in(empty_database, "tj_alpha")
    assert_no_turnjudge_in(empty_database, "public")
    check(urls)  # no drift between the models and the migrations, in the schema

    downgrade(urls, "base")
    found = objects_in(empty_database, "tj_alpha")
    assert found["tables"] <= {"alembic_version"}
    assert found["types"] == set()
    assert found["functions"] == set()

    upgrade(urls)
    assert_turnjudge_in(empty_database, "tj_alpha")
    check(urls)


def test_check_without_a_schema_ignores_a_named_schema(empty_database: str) -> None:
    """`alembic check` is clean with and without DB_SCHEMA on the same database."""
    named = DatabaseUrls.from_url(empty_database, schema="tj_beta")
    default = DatabaseUrls.from_url(empty_database)
    upgrade(named)
    upgrade(default)
    check(named)
    check(default)
    assert_turnjudge_in(empty_database, "public")
    assert_turnjudge_in(empty_database, "tj_beta")


def test_schemas_share_a_database_without_touching_each_other(empty_database: str) -> None:
    """Default schema first, then two named ones: each gets its own ENUM and tables."""
    default = DatabaseUrls.from_url(empty_database)
    upgrade(default)
    for schema in ("tj_one", "Tj_Two"):
        urls = DatabaseUrls.from_url(empty_database, schema=schema)
        upgrade(urls)
        assert_turnjudge_in(empty_database, schema)
        check(urls)
    with psycopg.connect(DatabaseUrls.from_url(empty_database, schema="tj_one").libpq) as conn:
        conn.execute(
            "INSERT INTO prompt_sessions (participant_id, position, language, max_turns)"
            " VALUES ('p', 'backend', 'en', 1)"
        )
    counts = {}
    with psycopg.connect(empty_database) as conn:
        for schema in ("public", "tj_one", "Tj_Two"):
            row = conn.execute(f'SELECT count(*) FROM "{schema}".prompt_sessions').fetchone()  # type: ignore[arg-type]
            counts[schema] = row[0] if row else None
    assert counts == {"public": 0, "tj_one": 1, "Tj_Two": 0}
    # Downgrading one named schema leaves the others (and their ENUMs) in place.
    downgrade(DatabaseUrls.from_url(empty_database, schema="tj_one"), "base")
    assert_turnjudge_in(empty_database, "public")
    assert_turnjudge_in(empty_database, "Tj_Two")


async def test_checkpoint_tables_follow_the_schema(empty_database: str) -> None:
    urls = DatabaseUrls.from_url(empty_database, schema="tj_graph")
    upgrade(urls)
    async with open_checkpointer(urls.libpq):
        pass
    assert CHECKPOINT_TABLES <= objects_in(empty_database, "tj_graph")["tables"]
    assert_no_turnjudge_in(empty_database, "public")


async def test_this_run_keeps_everything_in_its_schema(
    settings: Settings, db: Database, checkpointer: AsyncPostgresSaver
) -> None:
    """This run's database holds turnjudge (and the checkpoints) in DB_SCHEMA, else public.

    Run last by `test_storage_suite_in_a_named_schema`, after the storage suite wrote there.
    """
    schema = settings.db_schema or "public"
    assert_turnjudge_in(db.urls.libpq, schema)
    assert CHECKPOINT_TABLES <= objects_in(db.urls.libpq, schema)["tables"]
    if settings.db_schema is not None:
        with psycopg.connect(db.urls.libpq) as conn:  # the run's URL carries the search_path
            row = conn.execute("SHOW search_path").fetchone()
        assert row == (f'"{settings.db_schema}",public',)
        assert_no_turnjudge_in(db.urls.libpq, "public")


@pytest.mark.slow
def test_storage_suite_in_a_named_schema(tmp_path: Path) -> None:
    """The storage tests once more with DB_SCHEMA set, in a child pytest run."""
    report = tmp_path / "report.xml"
    env = {**os.environ, "DB_SCHEMA": "tj_suite"}
    env.pop("DATABASE_URL", None)  # the embedded server, like the parent run
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--junitxml={report}", *STORAGE_SUITE, "--deselect", SEED_FILE_CHECK],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("tests", "0")) > 50
    assert {"test_a_queued_session_belongs_to_its_tenant_and_signs_with_its_secret"} <= {
        case.get("name") for case in suite.iter("testcase")
    }
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("0", "0", "0")
    cases = {case.get("name") for case in suite.iter("testcase")}
    assert "test_this_run_keeps_everything_in_its_schema" in cases
