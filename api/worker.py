"""The worker process (`turnjudge worker`): runs queued evaluations, any number per database.

Start as many as needed, on any machine that reaches the same `DATABASE_URL` (or the same
embedded data directory): procrastinate hands each job to exactly one of them (`SELECT ...
FOR UPDATE SKIP LOCKED`) and wakes them with LISTEN/NOTIFY when a job is deferred.

- Concurrency: at most `--concurrency` jobs (sessions) at a time per worker; inside them the
  judge's own bound (LLM_MAX_CONCURRENCY) caps the LLM calls of the whole process.
- SIGTERM / SIGINT: the worker stops taking jobs and finishes the ones it has started
  (a second signal abandons them: they are then recovered like a crashed worker's).
- A crashed worker (SIGKILL, a lost machine) stops sending heartbeats (every
  WORKER_HEARTBEAT_S); once it has been silent for WORKER_STALLED_AFTER_S, any live worker
  puts its running jobs back in the queue (checked every WORKER_HEARTBEAT_S) and they are
  fetched at the next poll (every min(5 s, WORKER_HEARTBEAT_S)): a job is running again
  within WORKER_STALLED_AFTER_S + WORKER_HEARTBEAT_S + 5 s of the crash (45 s with the
  defaults). The job resumes the session: what was already stored is not redone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

import httpx

from api.jobs import WorkerContext, register_tasks
from api.runtime import open_runtime
from api.settings import Settings
from storage.queue import open_queue_app

logger = logging.getLogger(__name__)


async def _recover_stalled(worker: WorkerContext) -> None:
    """Every heartbeat interval, requeue the running jobs of workers that went silent."""
    settings = worker.runtime.settings
    jobs = worker.runtime.services.storage.jobs
    while True:
        try:
            retried = await jobs.retry_stalled(settings.worker_stalled_after_s)
            if retried:
                logger.warning("requeued stalled jobs of dead workers: %s", retried)
        except Exception:  # the database may be briefly away; try again next round
            logger.exception("stalled-job check failed")
        await asyncio.sleep(settings.worker_heartbeat_s)


async def run_worker(
    settings: Settings, *, concurrency: int = 1, queues: list[str] | None = None
) -> None:
    """Run a worker until SIGTERM/SIGINT (then finish the started jobs and return)."""
    async with open_runtime(settings) as runtime:  # freezes the start-up heap (graph.heap)
        app = open_queue_app(runtime.services.storage.db.urls)
        register_tasks(app, runtime)
        timeout = httpx.Timeout(settings.callback_timeout_s)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
            worker = WorkerContext(runtime=runtime, http=http)
            recovery = asyncio.create_task(_recover_stalled(worker), name="stalled-jobs")
            try:
                async with app.open_async():
                    await app.run_worker_async(
                        queues=queues or [settings.queue_name],
                        concurrency=concurrency,
                        name=f"turnjudge@{socket.gethostname()}:{os.getpid()}",
                        additional_context={"turnjudge": worker},
                        update_heartbeat_interval=settings.worker_heartbeat_s,
                        fetch_job_polling_interval=min(5.0, settings.worker_heartbeat_s),
                        stalled_worker_timeout=settings.worker_stalled_after_s,
                        install_signal_handlers=True,
                    )
            finally:
                recovery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recovery
