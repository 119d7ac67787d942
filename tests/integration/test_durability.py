"""An interview interrupted in one process resumes and finishes in another."""

from __future__ import annotations

import json
import uuid

import pytest

from storage.database import DatabaseUrls
from storage.services import Storage
from tests.support.offline_process import run_offline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ANSWERS = [
    "I designed an order service on PostgreSQL with composite indexes; p95 went from 300 to 80 ms.",
    "We used idempotency keys with a unique index so retries never double-charged customers.",
]


def run_step(database_urls: DatabaseUrls, *args: str) -> dict[str, object]:
    completed = run_offline(database_urls, "tests.support.interview_process", *args)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, object] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


async def test_resume_in_another_process(database_urls: DatabaseUrls, storage: Storage) -> None:
    started = run_step(database_urls, "start", "-", *ANSWERS)
    session_id = uuid.UUID(str(started["session_id"]))
    # The first process is gone; only the question is stored so far.
    transcript = await storage.sessions.get_transcript(session_id)
    assert [t.answer_text for t in transcript] == [None]

    finished = run_step(database_urls, "finish", str(session_id), *ANSWERS)
    assert finished["status"] == "completed"
    assert finished["questions"][0] == started["question"]  # type: ignore[index]

    session = await storage.sessions.get_session(session_id)
    assert session.ended_at is not None
    transcript = await storage.sessions.get_transcript(session_id)
    assert [t.answer_text for t in transcript] == ANSWERS
    evaluations = await storage.evaluations.list_evaluations(session_id)
    assert [e.turn for e in evaluations] == [1, 2, None]
