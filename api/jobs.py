"""The background tasks: "evaluate session X" and "deliver the callback of session X".

A job is the evaluation of one session and runs `InterviewService.submit`, the path of the
synchronous routes (one code path): under the session's lock it evaluates only what is
missing and closes the session, so a job run twice (a retry, a stalled job picked up again)
or racing a synchronous submit never judges an item twice. LLM failures (the judge's own
retries exhausted) and lost connections are retried by procrastinate with exponential
backoff (JOB_MAX_ATTEMPTS, JOB_BACKOFF_S); after the last attempt the job is `failed`, its
error is kept with the session and the report says `failed`. Other errors (a deleted
session, a refused request) fail at once: retrying cannot help.

Tasks are registered on the worker's procrastinate `App` by `register_tasks`, with retry
strategies from settings (nothing reads settings at import time). What a task needs (the
runtime, an HTTP client) reaches it through the worker's `additional_context`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from procrastinate import App, JobContext, RetryStrategy
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.exc import InterfaceError, OperationalError

from api.callbacks import CallbackFailedError, callback_body, callback_secret, post_callback
from api.runtime import AppRuntime
from nodes.close_session import EvaluationIncompleteError
from storage.queue import CALLBACK_TASK, EVALUATE_TASK
from storage.settings import DEFAULT_TENANT

logger = logging.getLogger(__name__)

#: Failures worth another attempt: the judge gave up (LLM down, rate-limited, invalid output
#: after its retries) or the database connection dropped.
RETRYABLE: tuple[type[Exception], ...] = (
    EvaluationIncompleteError,
    OperationalError,
    InterfaceError,
    OSError,
    TimeoutError,
)


@dataclass(frozen=True)
class WorkerContext:
    """What the tasks of one worker process share."""

    runtime: AppRuntime
    http: httpx.AsyncClient


def _worker(context: JobContext) -> WorkerContext:
    worker = context.additional_context["turnjudge"]
    assert isinstance(worker, WorkerContext)
    return worker


def _strategy(
    max_attempts: int, backoff_s: int, retry_on: tuple[type[Exception], ...]
) -> RetryStrategy | bool:
    """Procrastinate counts *retries* (0 would mean forever): runs - 1, or no retry at all."""
    if max_attempts <= 1:
        return False
    return RetryStrategy(
        max_attempts=max_attempts - 1, exponential_wait=backoff_s, retry_exceptions=retry_on
    )


def register_tasks(app: App, runtime: AppRuntime) -> None:
    """Register both tasks on `app` with the retry policy of `runtime.settings`."""
    settings = runtime.settings
    app.task(
        name=EVALUATE_TASK,
        pass_context=True,
        retry=_strategy(settings.job_max_attempts, settings.job_backoff_s, RETRYABLE),
    )(evaluate_session)
    app.task(
        name=CALLBACK_TASK,
        pass_context=True,
        retry=_strategy(
            settings.callback_max_attempts, settings.callback_backoff_s, (CallbackFailedError,)
        ),
    )(deliver_callback)


async def evaluate_session(
    context: JobContext,
    session_id: str,
    reevaluate: bool = False,
    callback_url: str | None = None,
    tenant: str = DEFAULT_TENANT,
) -> None:
    """Evaluate what is missing in the session and close it (the synchronous path).

    Runs as the tenant that queued it: the session of another tenant is not found.
    """
    worker = _worker(context)
    sid = uuid.UUID(session_id)
    job = context.job
    assert job.id is not None
    try:
        await worker.runtime.interviews.submit(sid, reevaluate=reevaluate, tenant=tenant)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        await worker.runtime.services.storage.jobs.record_failure(sid, job.id, error)
        last = job.attempts + 1 >= worker.runtime.settings.job_max_attempts
        if (last or not isinstance(exc, RETRYABLE)) and callback_url is not None:
            await _defer_callback(context, sid, callback_url, tenant, outcome="failed")
        raise
    if callback_url is not None:
        await _defer_callback(context, sid, callback_url, tenant, outcome="completed")


async def _defer_callback(
    context: JobContext, sid: uuid.UUID, url: str, tenant: str, *, outcome: str
) -> None:
    """Queue the delivery (at most one waiting per session and outcome)."""
    task = context.app.configure_task(
        CALLBACK_TASK,
        queue=context.job.queue,
        queueing_lock=f"turnjudge.callback:{sid}:{outcome}",
    )
    try:
        await task.defer_async(session_id=str(sid), url=url, tenant=tenant, outcome=outcome)
    except AlreadyEnqueued:
        logger.info("callback of session %s already queued", sid)


async def deliver_callback(
    context: JobContext, session_id: str, url: str, tenant: str, outcome: str
) -> None:
    """POST the signed report summary to `url`; raise (retry) unless it answers 2xx."""
    worker = _worker(context)
    sid = uuid.UUID(session_id)
    job = context.job
    assert job.id is not None
    attempt = job.attempts + 1
    secret = callback_secret(worker.runtime.settings, tenant)
    jobs = worker.runtime.services.storage.jobs
    if secret is None:  # checked at submission; the configuration changed since
        await jobs.record_callback_attempt(
            sid, url=url, attempt=attempt, outcome="no signing secret", delivered=False
        )
        raise RuntimeError(f"no callback secret for tenant {tenant!r}: callback not sent")
    report = await worker.runtime.interviews.report(sid, tenant)
    body = callback_body(report)
    details: dict[str, Any] = {"url": url, "attempt": attempt}
    try:
        result = await post_callback(
            worker.http, url, body, secret=secret, delivery_id=job.id, attempt=attempt
        )
    except CallbackFailedError as exc:
        await jobs.record_callback_attempt(
            sid, url=url, attempt=attempt, outcome=str(exc), delivered=False
        )
        logger.warning("callback of session %s failed: %s (%s)", sid, exc, details)
        raise
    await jobs.record_callback_attempt(
        sid, url=url, attempt=attempt, outcome=result, delivered=True
    )
