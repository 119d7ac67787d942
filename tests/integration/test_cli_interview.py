"""`turnjudge interview` and `turnjudge report`: the terminal paths a person uses."""

from __future__ import annotations

import io
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from rich.console import Console

from api.interactive import run_interview, start_or_resume
from api.interviews import InterviewService, TranscriptSubmission
from graph.graph import build_graph
from graph.services import Services
from storage.database import DatabaseUrls
from tests.support.offline_process import run_offline

pytestmark = pytest.mark.integration

ANSWERS = [
    "",  # refused: asked again
    "I shard by tenant id and keep hot rows in Redis with a 30 s TTL; p95 fell to 40 ms.",
    "/stop",
]


@pytest.fixture
def interviews(offline_services: Services, checkpointer: AsyncPostgresSaver) -> InterviewService:
    return InterviewService(build_graph(checkpointer), offline_services)


def _scripted(answers: list[str]) -> tuple[list[str], object]:
    asked: list[str] = []
    remaining = list(answers)

    async def ask(prompt: str) -> str:
        asked.append(prompt)
        return remaining.pop(0)

    return asked, ask


async def test_terminal_interview_refuses_empty_answers_and_stops(
    interviews: InterviewService,
) -> None:
    step = await start_or_resume(
        interviews,
        session_id=None,
        participant_id="p-cli",
        position="backend",
        language="en",
        max_turns=3,
    )
    asked, ask = _scripted(ANSWERS)
    out = io.StringIO()
    report = await run_interview(
        interviews,
        step,
        ask=ask,
        console=Console(file=out, width=120),  # type: ignore[arg-type]
    )
    assert len(asked) == 3
    assert "cannot be empty" in out.getvalue()
    assert [turn.answer for turn in report.turns if turn.answer] == [ANSWERS[1]]
    assert report.turns[0].evaluation is not None
    assert report.ended_at is not None  # stop after one answer evaluates it and closes


async def test_terminal_interview_resumes_by_session_id(interviews: InterviewService) -> None:
    first = await start_or_resume(
        interviews,
        session_id=None,
        participant_id="p-cli2",
        position="backend",
        language="en",
        max_turns=2,
    )
    assert first.question is not None
    resumed = await start_or_resume(
        interviews,
        session_id=first.session_id,
        participant_id="ignored",
        position="x",
        language="en",
        max_turns=1,
    )
    assert resumed.question == first.question


@pytest.fixture
async def finished_session(interviews: InterviewService) -> AsyncIterator[str]:
    report = await interviews.submit_transcript(
        TranscriptSubmission(
            participant_id="p-report-cli",
            position="backend",
            language="en",
            transcript=[{"question": "How do you cache?", "answer": ANSWERS[1]}],
        )
    )
    yield str(report.session_id)


def _cli(database_urls: DatabaseUrls, *args: str) -> subprocess.CompletedProcess[str]:
    return run_offline(database_urls, "api.cli", *args, COLUMNS="160")


async def test_report_command_text_and_html(
    database_urls: DatabaseUrls, finished_session: str, tmp_path: Path
) -> None:
    text = _cli(database_urls, "report", finished_session)
    assert text.returncode == 0, text.stderr[-2000:]
    assert finished_session in text.stdout and "How do you cache?" in text.stdout
    assert "HOLISTIC_FLOW" in text.stdout

    page = tmp_path / "report.html"
    html = _cli(database_urls, "report", finished_session, "--html", str(page))
    assert html.returncode == 0, html.stderr[-2000:]
    assert "How do you cache?" in page.read_text("utf-8")

    missing = _cli(database_urls, "report", "00000000-0000-4000-8000-000000000000")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "error: session 00000000-0000-4000-8000-000000000000 does not exist"
    )
