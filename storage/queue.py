"""The job queue: procrastinate's tables, read and written for turnjudge's evaluation jobs.

procrastinate (PostgreSQL-only, `SELECT ... FOR UPDATE SKIP LOCKED`) runs the workers; its
schema is created by migration 0005. This module is the only place that knows its tables:

- `open_queue_app` builds the procrastinate `App` a worker runs (psycopg, libpq URL: the same
  database and DB_SCHEMA search_path as everything else).
- `JobQueue` writes a submission's transcript *and* its job in one SQLAlchemy transaction, by
  calling procrastinate's own `procrastinate_defer_jobs_v1` SQL function (the function its
  Python `defer` calls): either both are stored or neither, and a worker can never pick up a
  job whose transcript is not committed. The bulk path defers hundreds of jobs in one
  statement. It also reads a session's latest job (the report's status) and records what
  procrastinate does not keep: a failed job's error and the callback attempts (in the
  session's metadata, merged, so nothing else there is touched).

A session has at most one job waiting (`queueing_lock`) and one running (`lock`, which also
keeps two jobs of a session from running at the same time); both locks are procrastinate's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from procrastinate import App, PsycopgConnector
from sqlalchemy import bindparam, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import String

from storage.database import Database, DatabaseUrls
from storage.emotions import check_emotion
from storage.models import PromptSession
from storage.sessions import TranscriptTurn
from storage.settings import DEFAULT_TENANT
from storage.text import check_text

#: procrastinate task names (the worker registers functions under these names).
EVALUATE_TASK = "turnjudge.evaluate_session"
CALLBACK_TASK = "turnjudge.deliver_callback"

#: procrastinate job status -> the report's status of a session that is still open.
OPEN_STATUS_BY_JOB = {"todo": "queued", "doing": "evaluating", "failed": "failed"}

_DEFER_SQL = text(
    """
    SELECT unnest(procrastinate_defer_jobs_v1(ARRAY(
        SELECT ROW(
            :queue, :task, 0,
            'turnjudge.session:' || (job.args ->> 'session_id'),
            'turnjudge.evaluate:' || (job.args ->> 'session_id'),
            job.args, NULL
        )::procrastinate_job_to_defer_v1
        FROM jsonb_array_elements(:jobs) WITH ORDINALITY AS job(args, n)
        ORDER BY job.n
    )))
    """
).bindparams(
    bindparam("queue", type_=String()),
    bindparam("task", type_=String()),
    bindparam("jobs", type_=JSONB()),
)

_INSERT_SESSIONS_SQL = text(
    """
    INSERT INTO prompt_sessions
           (id, participant_id, exam_id, position, language, max_turns, tenant, metadata)
    SELECT * FROM unnest(
        CAST(:ids AS uuid[]), CAST(:participants AS varchar[]), CAST(:exams AS varchar[]),
        CAST(:positions AS varchar[]), CAST(:languages AS varchar[]), CAST(:max_turns AS int[]),
        CAST(:tenants AS varchar[]), CAST(:metadata AS jsonb[])
    )
    ON CONFLICT (id) DO NOTHING
    """
)

_INSERT_MESSAGES_SQL = text(
    """
    INSERT INTO prompt_messages
           (session_id, turn, question_text, answer_text, emotion_summary, answered_at)
    SELECT session_id, turn, question, answer, emotion, now()
      FROM unnest(
        CAST(:sessions AS uuid[]), CAST(:turns AS int[]),
        CAST(:questions AS text[]), CAST(:answers AS text[]), CAST(:emotions AS jsonb[])
      ) AS m(session_id, turn, question, answer, emotion)
    ON CONFLICT (session_id, turn) DO NOTHING
    """
)

_JOB_COLUMNS = "id, status::text AS status, attempts, args, queue_name"

_ACTIVE_JOBS_SQL = text(
    f"""
    SELECT DISTINCT ON (args ->> 'session_id') args ->> 'session_id' AS session_id, {_JOB_COLUMNS}
      FROM procrastinate_jobs
     WHERE args ->> 'session_id' = ANY(:ids) AND task_name = :task
       AND status IN ('todo', 'doing')
     ORDER BY args ->> 'session_id', id DESC
    """
).bindparams(bindparam("task", type_=String()))

_LATEST_JOB_SQL = text(
    f"""
    SELECT {_JOB_COLUMNS}
      FROM procrastinate_jobs
     WHERE args ->> 'session_id' = :sid AND task_name = :task
     ORDER BY id DESC
     LIMIT 1
    """
).bindparams(bindparam("sid", type_=String()), bindparam("task", type_=String()))


_RETRY_STALLED_SQL = text(
    """
    WITH stalled AS (
        SELECT job.id
          FROM procrastinate_jobs job
          LEFT JOIN procrastinate_workers worker ON worker.id = job.worker_id
         WHERE job.status = 'doing'
           AND (job.worker_id IS NULL
                OR worker.last_heartbeat < now() - make_interval(secs => :seconds))
           FOR UPDATE OF job SKIP LOCKED
    )
    SELECT stalled.id
      FROM stalled, LATERAL procrastinate_retry_job_v2(stalled.id, now(), NULL, NULL, NULL)
    """
)


def open_queue_app(urls: DatabaseUrls) -> App:
    """The procrastinate app on turnjudge's database (tasks are registered by `api.jobs`)."""
    return App(connector=PsycopgConnector(conninfo=urls.libpq))


def _emotion(number: int, turn: TranscriptTurn) -> str | None:
    """The turn's texts checked and its emotion summary as JSON text (None: no data)."""
    check_text(f"transcript[{number}].question_text", turn.question_text)
    check_text(f"transcript[{number}].answer_text", turn.answer_text)
    if turn.emotion is None:
        return None
    return json.dumps(check_emotion(turn.emotion, f"transcript[{number}].emotion"))


@dataclass(frozen=True)
class QueuedTranscript:
    """A validated submission to store and evaluate in the background."""

    session_id: uuid.UUID
    participant_id: str
    position: str
    language: str
    exam_id: str | None
    turns: Sequence[TranscriptTurn]  # numbered from 1; emotions checked by storage.emotions
    tenant: str = DEFAULT_TENANT
    metadata: dict[str, Any] = field(default_factory=dict)  # run name and tags
    reevaluate: bool = False
    callback_url: str | None = None


@dataclass(frozen=True)
class JobView:
    """A job of a session as procrastinate stores it, plus the error turnjudge recorded."""

    id: int
    status: str  # procrastinate's: todo, doing, succeeded, failed, cancelled, aborted
    attempts: int
    error: str | None = None

    @property
    def open_status(self) -> str | None:
        """The report status this job gives a session that is not closed (None: `open`)."""
        return OPEN_STATUS_BY_JOB.get(self.status)


@dataclass(frozen=True)
class DeferredJob:
    """The job a submission was given: a new one (`queued`) or the session's active one."""

    id: int
    status: str  # `queued` (waiting) or `evaluating` (a worker is running it)


def job_args(
    session_id: uuid.UUID,
    *,
    reevaluate: bool = False,
    callback_url: str | None = None,
    tenant: str = DEFAULT_TENANT,
) -> dict[str, Any]:
    """The arguments of an evaluation job (the task's keyword arguments)."""
    return {
        "session_id": str(session_id),
        "reevaluate": reevaluate,
        "callback_url": callback_url,
        "tenant": tenant,
    }


class JobQueue:
    """Evaluation jobs of sessions (procrastinate's `procrastinate_jobs` table)."""

    def __init__(self, db: Database, queue_name: str = "evaluations") -> None:
        self._db = db
        self.queue_name = queue_name

    # ------------------------------------------------------------------ writes
    async def enqueue_transcripts(
        self, submissions: Sequence[QueuedTranscript]
    ) -> list[DeferredJob]:
        """Store the sessions and transcripts and defer their jobs, all in one transaction.

        New sessions are inserted; a session that already exists keeps its rows (the caller
        has checked that the transcript matches). A session whose job is already waiting or
        running gets that job instead of a second job. Returns one job per submission.
        """
        if not submissions:
            return []
        messages = [
            (item.session_id, number, turn.question_text, turn.answer_text, _emotion(number, turn))
            for item in submissions
            for number, turn in enumerate(item.turns, start=1)
        ]
        async with self._db.transaction() as s:
            # Arrays and unnest: a few parameters whatever the batch size (hundreds of
            # submissions per statement stay cheap to bind; see bench_queue).
            await s.execute(
                _INSERT_SESSIONS_SQL,
                {
                    "ids": [item.session_id for item in submissions],
                    "participants": [item.participant_id for item in submissions],
                    "exams": [item.exam_id for item in submissions],
                    "positions": [item.position for item in submissions],
                    "languages": [item.language for item in submissions],
                    "max_turns": [len(item.turns) for item in submissions],
                    "tenants": [item.tenant for item in submissions],
                    "metadata": [json.dumps(item.metadata) for item in submissions],
                },
            )
            await s.execute(
                _INSERT_MESSAGES_SQL,
                {
                    "sessions": [m[0] for m in messages],
                    "turns": [m[1] for m in messages],
                    "questions": [m[2] for m in messages],
                    "answers": [m[3] for m in messages],
                    "emotions": [m[4] for m in messages],
                },
            )
            return await self._defer(
                s,
                [
                    job_args(
                        item.session_id,
                        reevaluate=item.reevaluate,
                        callback_url=item.callback_url,
                        tenant=item.tenant,
                    )
                    for item in submissions
                ],
            )

    async def enqueue_session(
        self,
        session_id: uuid.UUID,
        *,
        reevaluate: bool = False,
        callback_url: str | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> DeferredJob:
        """Defer the evaluation of a stored session (or return its waiting/running job)."""
        args = job_args(session_id, reevaluate=reevaluate, callback_url=callback_url, tenant=tenant)
        async with self._db.transaction() as s:
            return (await self._defer(s, [args]))[0]

    async def _defer(self, s: AsyncSession, jobs: Sequence[dict[str, Any]]) -> list[DeferredJob]:
        """The job of each of `jobs`: the session's active job if it has one, else a new job."""
        ids = [job["session_id"] for job in jobs]
        active = {
            row.session_id: DeferredJob(int(row.id), OPEN_STATUS_BY_JOB[row.status])
            for row in await s.execute(_ACTIVE_JOBS_SQL, {"ids": ids, "task": EVALUATE_TASK})
        }
        new = [job for job in jobs if job["session_id"] not in active]
        if new:
            new_ids = (
                await s.scalars(
                    _DEFER_SQL, {"queue": self.queue_name, "task": EVALUATE_TASK, "jobs": new}
                )
            ).all()
            active.update(
                {
                    job["session_id"]: DeferredJob(int(job_id), "queued")
                    for job, job_id in zip(new, new_ids, strict=True)
                }
            )
        return [active[session_id] for session_id in ids]

    async def record_failure(self, session_id: uuid.UUID, job_id: int, error: str) -> None:
        """Keep a job's last error with the session (procrastinate stores no error text)."""
        await self._merge_metadata(
            session_id, {"evaluation_job": {"job_id": job_id, "error": error[:2_000]}}
        )

    async def record_callback_attempt(
        self, session_id: uuid.UUID, *, url: str, attempt: int, outcome: str, delivered: bool
    ) -> None:
        """Record one callback delivery attempt with the session (its latest outcome)."""
        await self._merge_metadata(
            session_id,
            {
                "callback": {
                    "url": url,
                    "attempts": attempt,
                    "last_outcome": outcome[:500],
                    "delivered": delivered,
                }
            },
        )

    async def _merge_metadata(self, session_id: uuid.UUID, values: dict[str, Any]) -> None:
        async with self._db.transaction() as s:
            await s.execute(
                update(PromptSession)
                .where(PromptSession.id == session_id)
                .values(
                    metadata_=PromptSession.metadata_.op("||")(literal(values, type_=JSONB)),
                    updated_at=func.now(),
                )
            )

    async def retry_stalled(self, stalled_after_s: float) -> list[int]:
        """Put the running jobs of workers silent for `stalled_after_s` back in the queue.

        One statement through procrastinate's `procrastinate_retry_job_v2` (counts an
        attempt, keeps the job's lock): the rows are locked `FOR UPDATE SKIP LOCKED` and the
        condition re-checked, so workers checking at the same time never requeue a job twice
        nor one that another worker has just picked up again.
        """
        async with self._db.transaction() as s:
            rows = await s.scalars(_RETRY_STALLED_SQL, {"seconds": float(stalled_after_s)})
            return [int(job_id) for job_id in rows]

    # ------------------------------------------------------------------ reads
    async def latest_job(self, session_id: uuid.UUID) -> JobView | None:
        """The session's most recent evaluation job, with the error recorded for it."""
        async with self._db.transaction() as s:
            row = (
                await s.execute(_LATEST_JOB_SQL, {"sid": str(session_id), "task": EVALUATE_TASK})
            ).one_or_none()
            if row is None:
                return None
            metadata = await s.scalar(
                select(PromptSession.metadata_).where(PromptSession.id == session_id)
            )
        recorded = (metadata or {}).get("evaluation_job") or {}
        error = recorded.get("error") if recorded.get("job_id") == row.id else None
        return JobView(id=int(row.id), status=row.status, attempts=int(row.attempts), error=error)

    async def status_counts(self, session_ids: Iterable[uuid.UUID]) -> dict[str, int]:
        """How many of these sessions are closed, and the status of the latest job of the rest.

        One query, for progress bars over many queued sessions (`turnjudge evaluate --wait`).
        """
        sql = text(
            """
            SELECT CASE
                     WHEN s.ended_at IS NOT NULL THEN 'completed'
                     ELSE COALESCE(j.status::text, 'open')
                   END AS state,
                   count(*) AS n
              FROM prompt_sessions s
              LEFT JOIN LATERAL (
                  SELECT status FROM procrastinate_jobs
                   WHERE args ->> 'session_id' = s.id::text AND task_name = :task
                   ORDER BY id DESC LIMIT 1
              ) j ON true
             WHERE s.id = ANY(:ids)
             GROUP BY 1
            """
        ).bindparams(bindparam("task", type_=String()))
        async with self._db.transaction() as s:
            rows = await s.execute(sql, {"ids": list(session_ids), "task": EVALUATE_TASK})
            return {row.state: int(row.n) for row in rows}
