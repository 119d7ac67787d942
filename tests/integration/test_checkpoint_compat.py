"""Checkpoints written by the previous release load without LangGraph's deserialisation warning.

The previous release saved checkpoints with LangGraph's default serializer, which accepts
any type and warns "Deserializing unregistered type ... will be blocked in a future version"
when it loads one of ours (the `InterviewState` travelling in a `Send`). An upgrade that
blocks them would strand every stored interview; the checkpointer now names our types.
Here checkpoints are written exactly as the previous release did (its saver, its default
serializer), then read and resumed through today's runtime.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde import jsonplus
from langgraph.types import Send

from api.interviews import InterviewService
from api.runtime import CHECKPOINT_TYPES
from graph.graph import build_graph
from graph.services import Services, use_services
from graph.state import InterviewState
from storage.checkpoints import open_checkpointer
from storage.database import DatabaseUrls

pytestmark = pytest.mark.integration

ANSWER = "Idempotency keys with a unique index; INSERT ON CONFLICT returns the first charge."


async def test_previous_release_checkpoints_load_and_resume_without_warning(
    database_urls: DatabaseUrls, offline_services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    interview_id, submission_id = uuid.uuid4(), uuid.uuid4()
    # --- the previous release: default serializer, submissions on the session's thread ---
    with use_services(offline_services):
        async with AsyncPostgresSaver.from_conn_string(database_urls.libpq) as old_saver:
            await old_saver.setup()
            old_graph: Any = build_graph(old_saver)  # fed partial state dicts, as callers do
            await old_graph.ainvoke(
                {
                    "session_id": str(interview_id),
                    "participant_id": "p-old",
                    "position": "backend",
                    "language": "en",
                    "max_turns": 2,
                    "mode": "interview",
                },
                {"configurable": {"thread_id": str(interview_id)}},
            )
            await old_graph.ainvoke(
                {
                    "session_id": str(submission_id),
                    "participant_id": "p-old",
                    "position": "backend",
                    "language": "en",
                    "max_turns": 1,
                    "mode": "submission",
                    "transcript": [{"question": "Why indexes?", "answer": ANSWER}],
                },
                {"configurable": {"thread_id": str(submission_id)}},
            )

    # --- today's runtime reads and resumes them ---
    jsonplus._warned_unregistered_types.clear()  # LangGraph warns once per process and type
    caplog.set_level(logging.WARNING, logger="langgraph")
    async with open_checkpointer(database_urls.libpq, allowed_types=CHECKPOINT_TYPES) as saver:
        sends: list[Send] = []
        async for item in saver.alist({"configurable": {"thread_id": str(submission_id)}}):
            for _task, channel, value in item.pending_writes or []:
                if channel == "__pregel_tasks" and isinstance(value, Send):
                    sends.append(value)
        assert any(isinstance(send.arg, InterviewState) for send in sends)  # really exercised

        interviews = InterviewService(build_graph(saver), offline_services)
        pending = await interviews.pending(interview_id)
        assert pending.question is not None and pending.question.turn == 1
        step = await interviews.answer(interview_id, ANSWER)
        assert step.question is not None and step.question.turn == 2
        done = await interviews.answer(interview_id, ANSWER + " And monitoring.")
        assert done.status == "completed"
        report = await interviews.submit(submission_id)  # closed by the old run: idempotent
        assert report.status == "completed"
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "will be blocked" in m or "Blocked deserial" in m], messages
