"""`turnjudge compare` on sessions stored in the real embedded PostgreSQL.

The stored scores are written by the test (the real heuristic judge's, shifted by a known
amount), so every difference and statistic between `stored` and `heuristic` is known; the
LLM judge answers from the local OpenAI-compatible stub. Nothing may be written by compare.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from api.calibration.compare import (
    CompareJudge,
    NothingToCompareError,
    compare,
    item_key,
    load_sessions,
)
from api.calibration.compare_report import to_json, to_markdown
from api.cli import app
from api.settings import get_settings
from nodes.judges.heuristic.judge import HeuristicJudge
from nodes.judges.llm.judge import LLMJudge
from storage.database import Database
from storage.embeddings import Embedder
from storage.errors import SessionNotFoundError
from storage.models import PromptEvaluation
from storage.services import Storage
from storage.sessions import TranscriptTurn
from tests.support.openai_stub import OpenAIStub
from tests.support.stub_judge import stub_settings

pytestmark = pytest.mark.integration

EN = [
    (
        "How would you make a payment endpoint safe to retry?",
        "An idempotency key stored under a unique index, and INSERT ... ON CONFLICT returning "
        "the first result; the client retries with the same key and never pays twice.",
    ),
    ("How do you find a slow SQL query in production?", "I don't know."),
    (
        "How would you cache a hot read path?",
        "Read-through cache in Redis with a TTL of 60 s and explicit invalidation on writes; "
        "p95 went from 300 ms to 40 ms.",
    ),
]
KO = [
    (
        "결제 API를 재시도해도 안전하게 만들려면 어떻게 하시겠습니까?",
        "멱등성 키를 unique index로 저장하고 ON CONFLICT로 첫 결과를 돌려줍니다.",
    ),
    ("느린 쿼리는 어떻게 찾으시나요?", "EXPLAIN ANALYZE와 pg_stat_statements로 찾습니다."),
]
SHIFT = 10.0


async def store_session(
    storage: Storage, run: str, language: str, turns: list[tuple[str, str]]
) -> uuid.UUID:
    view = await storage.sessions.create_session(
        participant_id=f"p-{language}",
        position="backend",
        language=language,
        max_turns=len(turns),
        metadata={"run": run, "tags": {"team": "compare"}},
    )
    await storage.sessions.save_transcript(
        view.id, [TranscriptTurn(question_text=q, answer_text=a) for q, a in turns]
    )
    return view.id


async def evaluation_rows(db: Database) -> int:
    async with db.transaction() as s:
        return int((await s.execute(select(func.count()).select_from(PromptEvaluation))).scalar())


@pytest.fixture
async def stored(storage: Storage, embedder: Embedder) -> tuple[str, list[uuid.UUID]]:
    """Two sessions (en, ko) whose stored TURN_EVALs are the heuristic's score + SHIFT.

    The last English turn and the Korean flow have no stored evaluation.
    """
    run = f"cmp-{uuid.uuid4().hex[:8]}"
    ids = [
        await store_session(storage, run, "en", EN),
        await store_session(storage, run, "ko", KO),
    ]
    heuristic = HeuristicJudge(embedder)
    for session in await load_sessions(storage.db, session_ids=ids):
        for turn in session.turns:
            if (session.language, turn.turn) == ("en", 3):
                continue
            details = (await heuristic.evaluate_turn(turn)).to_json()
            details["score"] = min(100.0, details["score"] + SHIFT)
            await storage.evaluations.save_turn_evaluation(session.id, turn.turn, details)
        if session.language == "en":
            flow = (await heuristic.evaluate_flow(session.flow())).to_json()
            await storage.evaluations.save_holistic_evaluation(session.id, flow)
    return run, ids


async def test_sessions_are_read_with_their_stored_scores(
    storage: Storage, stored: tuple[str, list[uuid.UUID]]
) -> None:
    run, (en, ko) = stored
    by_run = await load_sessions(storage.db, run=run)
    assert [s.id for s in by_run] == [en, ko]
    assert [s.id for s in await load_sessions(storage.db, session_ids=[ko])] == [ko]
    english = by_run[0]
    assert [t.turn for t in english.turns] == [1, 2, 3]
    assert english.turns[0].question == EN[0][0] and english.turns[0].answer == EN[0][1]
    assert set(english.stored) == {1, 2, None}
    assert {s.id for s in await load_sessions(storage.db, tags={"team": "compare"})} >= {en, ko}
    missing = uuid.uuid4()
    with pytest.raises(SessionNotFoundError, match=str(missing)):
        await load_sessions(storage.db, session_ids=[en, missing])


async def test_heuristic_vs_stored_gives_the_known_differences_and_writes_nothing(
    storage: Storage, embedder: Embedder, stored: tuple[str, list[uuid.UUID]]
) -> None:
    run, (en, ko) = stored
    sessions = await load_sessions(storage.db, run=run)
    before = await evaluation_rows(storage.db)
    result = await compare(
        sessions,
        [CompareJudge.STORED, CompareJudge.HEURISTIC],
        {"heuristic": HeuristicJudge(embedder)},
        resamples=200,
    )
    assert await evaluation_rows(storage.db) == before  # nothing stored

    stored_run, heuristic_run = result.runs
    assert stored_run.failures == {
        item_key(en, 3): "no stored TURN_EVAL",
        item_key(ko, None): "no stored HOLISTIC_FLOW",
    }
    assert heuristic_run.failures == {} and len(heuristic_run.scores) == 7  # 5 turns, 2 flows
    assert stored_run.judge["kind"] == "heuristic"
    (pair,) = result.comparisons
    turns = pair.agreement["turns"]
    assert turns.n == 4  # the turns both judges scored
    assert turns.statistics["bias"].value == pytest.approx(-SHIFT, abs=1e-6)
    assert turns.statistics["mae"].value == pytest.approx(SHIFT, abs=1e-6)
    assert turns.statistics["spearman"].value == pytest.approx(1.0)
    assert pair.agreement["turns:en"].n == 2 and pair.agreement["turns:ko"].n == 2
    assert pair.agreement["flows"].n == 1
    # one flow: no statistic is defined on a single item (the item's difference is shown)
    assert pair.agreement["flows"].statistics["mae"].value is None

    data = to_json(result)
    rows = {(i["session_id"], i["turn"]): i for i in data["items"]}
    first = rows[(str(en), 1)]
    assert first["differences"]["heuristic-stored"] == pytest.approx(-SHIFT)
    assert rows[(str(en), 3)]["scores"]["stored"] is None
    assert rows[(str(en), None)]["differences"]["heuristic-stored"] == 0
    assert rows[(str(en), 3)]["differences"]["heuristic-stored"] is None
    text = to_markdown(result)
    assert "## Judge `heuristic` vs judge `stored`" in text
    row = next(line for line in text.splitlines() if line.startswith(f"| {str(en)[:8]} | 1 |"))
    assert row.endswith("| -10 |")
    assert "no stored HOLISTIC_FLOW" in text


async def test_heuristic_vs_llm_calls_the_stub_once_per_item(
    storage: Storage, embedder: Embedder, stored: tuple[str, list[uuid.UUID]]
) -> None:
    run, _ = stored
    sessions = await load_sessions(storage.db, run=run)
    before = await evaluation_rows(storage.db)
    with OpenAIStub() as stub:
        llm = LLMJudge.from_settings(stub_settings(stub))
        try:
            result = await compare(
                sessions,
                [CompareJudge.HEURISTIC, CompareJudge.LLM],
                {"heuristic": HeuristicJudge(embedder), "llm": llm},
                resamples=200,
            )
        finally:
            await llm.aclose()
        calls = stub.calls
    assert calls == 7  # 5 turns + 2 flows, no guard: every item reaches the model
    assert await evaluation_rows(storage.db) == before
    heuristic_run, llm_run = result.runs
    assert len(llm_run.scores) == 7 and llm_run.judge["kind"] == "llm"
    (pair,) = result.comparisons
    assert pair.agreement["turns"].n == 5 and pair.agreement["flows"].n == 2
    items = to_json(result)["items"]
    assert all(
        i["scores"]["llm"] == llm_run.scores[item_key(i["session_id"], i["turn"])] for i in items
    )


async def test_a_selection_without_answers_is_an_error(storage: Storage) -> None:
    view = await storage.sessions.create_session(
        participant_id="p-empty", position="backend", language="en", max_turns=2
    )
    sessions = await load_sessions(storage.db, session_ids=[view.id])
    assert sessions[0].turns == ()
    with pytest.raises(NothingToCompareError):
        await compare(sessions, [CompareJudge.STORED, CompareJudge.HEURISTIC], {})


# ---------------------------------------------------------------------------- the command

runner = CliRunner()


@pytest.fixture
def cli_env(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI on the test database, no LLM endpoint configured."""
    monkeypatch.setenv("DATABASE_URL", db.urls.sqlalchemy)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("JUDGE", "auto")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.slow
async def test_the_command_writes_both_reports(
    stored: tuple[str, list[uuid.UUID]], cli_env: None, tmp_path: Path
) -> None:
    run, (en, _) = stored
    report, data = tmp_path / "compare.md", tmp_path / "compare.json"
    args = ["compare", "--run", run, "-j", "stored", "-j", "heuristic", "--resamples", "200"]
    result = await asyncio.to_thread(
        runner.invoke, app, [*args, "--report", str(report), "--json", str(data)]
    )
    assert result.exit_code == 0, result.output
    parsed = json.loads(data.read_text("utf-8"))
    assert [j["name"] for j in parsed["judges"]] == ["stored", "heuristic"]
    assert parsed["sessions"]["n"] == 2 and parsed["sessions"]["turns"] == 5
    bias = parsed["comparisons"][0]["agreement"]["turns"]["statistics"]["bias"]["value"]
    assert bias == pytest.approx(-SHIFT, abs=1e-6)
    assert report.read_text("utf-8").startswith("# Judge comparison on stored sessions")
    assert str(en)[:8] in report.read_text("utf-8")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--session", "{missing}", "-j", "stored", "-j", "heuristic"], "{missing} does not"),
        (["--session", "{en}", "-j", "stored", "-j", "llm"], "OPENAI_API_KEY or OPENAI_BASE_URL"),
        (["-j", "stored", "-j", "stored"], "two different judges"),
        (["-j", "stored", "-j", "gpt"], "choose stored, heuristic or llm"),
    ],
)
async def test_the_command_refuses_bad_input_with_exit_1_or_2(
    stored: tuple[str, list[uuid.UUID]], cli_env: None, args: list[str], message: str
) -> None:
    _, (en, _) = stored
    values = {"missing": str(uuid.uuid4()), "en": str(en)}
    command = ["compare", *(a.format(**values) for a in args)]
    result = await asyncio.to_thread(runner.invoke, app, command)
    assert result.exit_code in {1, 2}
    assert message.format(**values) in result.output
