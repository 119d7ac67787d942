"""`turnjudge demo --position --language`: the scripted candidates, English and Korean."""

from __future__ import annotations

import re

import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from api.demo import load_candidate, prepared_answers, run_demo
from api.interviews import InterviewService
from api.validation import InvalidRequestError
from graph.graph import build_graph
from graph.services import Services
from nodes.judges.rubrics import available_positions
from storage.bank import load_bank

pytestmark = pytest.mark.integration

HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.fixture
def interviews(offline_services: Services, checkpointer: AsyncPostgresSaver) -> InterviewService:
    return InterviewService(build_graph(checkpointer), offline_services)


def test_the_korean_candidate_answers_every_korean_bank_question_in_korean() -> None:
    candidate = load_candidate("ko")
    bank = load_bank()
    for position in available_positions():
        asked = {q.text for q in bank if q.position == position and q.language == "ko"}
        answers = prepared_answers(candidate, position)
        assert {a["question"] for a in answers} == asked, position
        assert all(len(HANGUL.findall(a["answer"])) > 50 for a in answers), position


@pytest.mark.parametrize(
    ("position", "language"),
    [("backend", "en"), *[(position, "ko") for position in available_positions()]],
)
async def test_the_demo_runs_offline_and_prints_analyses_in_its_language(
    interviews: InterviewService,
    offline_services: Services,
    capsys: pytest.CaptureFixture[str],
    position: str,
    language: str,
) -> None:
    report = await run_demo(
        interviews, offline_services.storage.embedder, position=position, language=language
    )
    printed = " ".join(capsys.readouterr().out.split())
    assert report.status == "completed" and report.language == language
    prepared = {
        a["question"]: a["answer"] for a in prepared_answers(load_candidate(language), position)
    }
    for turn in report.turns:
        assert turn.answer == prepared[turn.question]  # the candidate answered what was asked
    assert report.holistic is not None
    analyses = [t.evaluation["analysis"] for t in report.turns if t.evaluation]
    analyses.append(report.holistic["analysis"])
    assert len(analyses) == len(report.turns) + 1
    for analysis in analyses:
        assert " ".join(analysis.split()) in printed  # the whole analysis is printed
        assert bool(HANGUL.search(analysis)) == (language == "ko"), analysis
    assert report.holistic["judge"]["kind"] == "heuristic"


async def test_a_demo_without_a_scripted_candidate_is_refused_before_anything_runs(
    interviews: InterviewService, offline_services: Services
) -> None:
    with pytest.raises(InvalidRequestError, match="position has no scripted en demo"):
        await run_demo(
            interviews, offline_services.storage.embedder, position="frontend", language="en"
        )
    with pytest.raises(InvalidRequestError, match="language must be one of"):
        await run_demo(interviews, offline_services.storage.embedder, language="fr")
