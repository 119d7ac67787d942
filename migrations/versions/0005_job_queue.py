"""Job queue: procrastinate's schema (background evaluation jobs) on the same database.

procrastinate ships its schema as one SQL script (`SchemaManager.get_schema()`, pinned with
the package); it is applied here so that `turnjudge migrate` (or any upgrade) creates it and no
user has to remember `procrastinate schema --apply`. The script holds functions with `;` inside
dollar-quoted bodies and `%` signs, so it is sent as is on the driver's own connection (simple
query protocol for asyncpg, no parameters for psycopg) instead of through SQLAlchemy's text
parsing. Everything lands in the connection's first search_path schema (DB_SCHEMA or public),
like turnjudge's own tables.

One index of ours is added: jobs by session id, for the report's status (latest job of a
session) without scanning the whole job table.

With DB_SCHEMA several schemas of one database each hold their own queue; the downgrade
drops only what lives in the connection's `current_schema()`, never a namesake in `public`.
(procrastinate's LISTEN/NOTIFY channels are database-wide: a job deferred in one schema may
wake the idle workers of another, which then find nothing to do in theirs. Harmless.)

Revision ID: 0005_job_queue
Revises: 0004_question_expected_points
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy.util import await_only

revision: str = "0005_job_queue"
down_revision: str | None = "0004_question_expected_points"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SESSION_INDEX = (
    "CREATE INDEX turnjudge_jobs_session_idx "
    "ON procrastinate_jobs ((args ->> 'session_id'), id DESC)"
)

# Functions first (triggers go with their tables), then tables, then types.
DROP_FUNCTIONS = r"""
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure AS signature
          FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\_%'
    LOOP
        EXECUTE 'DROP FUNCTION ' || f.signature || ' CASCADE';
    END LOOP;
END
$$
"""
# Named in current_schema() explicitly: an unqualified name could resolve to `public`.
DROP_TABLES = r"""
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['procrastinate_events', 'procrastinate_periodic_defers',
                             'procrastinate_jobs', 'procrastinate_workers']
    LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I.%I CASCADE', current_schema(), t);
    END LOOP;
END
$$
"""
DROP_TYPES = r"""
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['procrastinate_job_to_defer_v1', 'procrastinate_job_event_type',
                             'procrastinate_job_status']
    LOOP
        EXECUTE format('DROP TYPE IF EXISTS %I.%I', current_schema(), t);
    END LOOP;
END
$$
"""


def _execute_script(script: str) -> None:
    """Run a multi-statement script on the migration's own connection and transaction."""
    driver = op.get_bind().connection.driver_connection
    if driver is None:  # pragma: no cover - a connection is always open during a migration
        raise RuntimeError("no database connection")
    if type(driver).__module__.startswith("asyncpg"):
        await_only(driver.execute(script))  # the `alembic` command line (asyncpg, run_sync)
    else:
        driver.execute(script)  # storage.migrate (psycopg): no parameters, sent verbatim


def upgrade() -> None:
    _execute_script(SchemaManager.get_schema())
    _execute_script(SESSION_INDEX)


def downgrade() -> None:
    _execute_script(DROP_FUNCTIONS)
    _execute_script(DROP_TABLES)
    _execute_script(DROP_TYPES)
