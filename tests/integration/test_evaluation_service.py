"""EvaluationStorageService and SessionStore on the real embedded PostgreSQL.

Typed errors with messages naming the problem, nothing partial stored after an error,
upsert semantics (one row, created_at kept, updated_at bumped), concurrent duplicate saves
through separate connections, the one-statement bulk upsert, close_session's completeness
rule, and the idempotency / conflict rules of the session store.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select

from api.settings import Settings
from storage.database import Database, DatabaseUrls, create_engine
from storage.errors import (
    EvaluationTypeError,
    InvalidDetailsError,
    InvalidTextError,
    SessionEndedError,
    SessionIncompleteError,
    SessionNotFoundError,
    TurnConflictError,
    TurnNotAnsweredError,
    TurnNotFoundError,
)
from storage.evaluations import EvaluationStorageService, TurnEvaluationInput
from storage.models import EvaluationType, PromptEvaluation
from storage.sessions import SessionStore, TranscriptTurn
from storage.views import SavedEvaluation

pytestmark = pytest.mark.integration

OK: dict[str, Any] = {"score": 75, "analysis": "specific and correct"}

CONCURRENT_WRITERS = 50


# --------------------------------------------------------------------------- helpers


async def new_session(sessions: SessionStore, answered: int = 3, unanswered: int = 0) -> uuid.UUID:
    """A session with `answered` answered turns followed by `unanswered` question-only turns."""
    view = await sessions.create_session(
        participant_id=f"p-{uuid.uuid4().hex[:8]}",
        position="backend",
        language="en",
        max_turns=max(answered + unanswered, 1),
    )
    if answered:
        await sessions.save_transcript(
            view.id,
            [
                TranscriptTurn(question_text=f"Q{n}", answer_text=f"A{n}")
                for n in range(1, answered + 1)
            ],
        )
    for turn in range(answered + 1, answered + unanswered + 1):
        await sessions.add_question(view.id, turn, f"Q{turn}")
    return view.id


async def new_sessions(sessions: SessionStore, count: int, answered: int) -> list[uuid.UUID]:
    """`count` sessions created 10 at a time (the shared pool has 30 connections)."""
    created: list[uuid.UUID] = []
    for start in range(0, count, 10):
        batch = min(10, count - start)
        created += await asyncio.gather(
            *(new_session(sessions, answered=answered) for _ in range(batch))
        )
    return created


def items_for(
    session_ids: Sequence[uuid.UUID], turns: int, score: int = 50
) -> list[TurnEvaluationInput]:
    return [
        TurnEvaluationInput(
            session_id=sid,
            turn=turn,
            details={
                "score": score,
                "analysis": f"turn {turn}",
                "rubrics": {"depth": {"score": score, "reason": f"turn {turn}"}},
            },
        )
        for sid in session_ids
        for turn in range(1, turns + 1)
    ]


async def stored_count(db: Database, session_ids: Sequence[uuid.UUID]) -> int:
    async with db.transaction() as s:
        count = await s.scalar(
            select(func.count())
            .select_from(PromptEvaluation)
            .where(PromptEvaluation.session_id.in_(list(session_ids)))
        )
    return int(count or 0)


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement sent through the shared engine while the block runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


def evaluation_inserts(seen: list[str]) -> list[str]:
    return [s for s in seen if s.lstrip().upper().startswith("INSERT INTO PROMPT_EVALUATIONS")]


@pytest.fixture
async def wide_db(settings: Settings, database_urls: DatabaseUrls) -> AsyncIterator[Database]:
    """A second engine whose pool lets every concurrent writer hold its own connection."""
    wide = settings.model_copy(
        update={"db_pool_size": CONCURRENT_WRITERS + 5, "db_max_overflow": 0}
    )
    database = Database(create_engine(wide, database_urls.sqlalchemy), database_urls)
    yield database
    await database.dispose()


@contextmanager
def new_connections(db: Database) -> Iterator[list[int]]:
    """Count DBAPI connections opened by `db`'s engine while the block runs."""
    opened: list[int] = []

    def record(dbapi_connection: Any, connection_record: Any) -> None:
        opened.append(id(dbapi_connection))

    event.listen(db.engine.sync_engine, "connect", record)
    try:
        yield opened
    finally:
        event.remove(db.engine.sync_engine, "connect", record)


# ------------------------------------------------------------------------ typed errors


async def test_unknown_session_is_named_everywhere(
    sessions: SessionStore, evaluations: EvaluationStorageService
) -> None:
    sid = uuid.uuid4()
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: evaluations.save_turn_evaluation(sid, 1, OK),
        lambda: evaluations.save_holistic_evaluation(sid, OK),
        lambda: evaluations.save_turn_evaluations([TurnEvaluationInput(sid, 1, OK)]),
        lambda: evaluations.save_evaluation(sid, "HOLISTIC_FLOW", OK),
        lambda: evaluations.list_evaluations(sid),
        lambda: evaluations.get_holistic_evaluation(sid),
        lambda: evaluations.close_session(sid),
        lambda: sessions.get_session(sid),
        lambda: sessions.get_transcript(sid),
        lambda: sessions.add_question(sid, 1, "Q1"),
        lambda: sessions.record_answer(sid, 1, "A1"),
        lambda: sessions.save_transcript(sid, [TranscriptTurn("Q1", "A1")]),
    ]
    for call in calls:
        with pytest.raises(SessionNotFoundError) as info:
            await call()
        assert str(sid) in str(info.value)
        assert "does not exist" in str(info.value)
        assert info.value.session_id == sid


async def test_unknown_turn(
    db: Database, sessions: SessionStore, evaluations: EvaluationStorageService
) -> None:
    sid = await new_session(sessions, answered=2)
    with pytest.raises(TurnNotFoundError) as info:
        await evaluations.save_turn_evaluation(sid, 3, OK)
    assert "has no turn 3" in str(info.value)
    assert str(sid) in str(info.value)
    assert (info.value.session_id, info.value.turn) == (sid, 3)
    with pytest.raises(TurnNotFoundError, match="has no turn 7"):
        await sessions.record_answer(sid, 7, "answer to nothing")
    with pytest.raises(TurnNotFoundError, match="has no turn 0"):
        await sessions.add_question(sid, 0, "turns start at 1")
    assert await stored_count(db, [sid]) == 0


async def test_unanswered_turn(
    db: Database, sessions: SessionStore, evaluations: EvaluationStorageService
) -> None:
    sid = await new_session(sessions, answered=0, unanswered=1)  # add_question only
    with pytest.raises(TurnNotAnsweredError) as info:
        await evaluations.save_turn_evaluation(sid, 1, OK)
    assert "turn 1" in str(info.value) and "no answer yet" in str(info.value)
    assert (info.value.session_id, info.value.turn) == (sid, 1)
    assert await stored_count(db, [sid]) == 0
    # Once answered, the same save succeeds (control).
    await sessions.record_answer(sid, 1, "A1")
    assert (await evaluations.save_turn_evaluation(sid, 1, OK)).created is True


@pytest.mark.parametrize(
    ("evaluation_type", "turn", "message"),
    [
        pytest.param("TURN_EVAL", None, "TURN_EVAL needs a turn", id="turn-eval-without-turn"),
        pytest.param(EvaluationType.TURN_EVAL, None, "TURN_EVAL needs a turn", id="enum-no-turn"),
        pytest.param("HOLISTIC_FLOW", 2, "turn must be None", id="holistic-with-turn"),
        pytest.param("FINAL", None, "must be one of TURN_EVAL, HOLISTIC_FLOW", id="bad-type"),
        pytest.param("turn_eval", 1, "got 'turn_eval'", id="lower-case-type"),
        pytest.param("TURN_EVAL", 0, "turn number >= 1, got 0", id="turn-zero"),
        pytest.param("TURN_EVAL", -3, "turn number >= 1, got -3", id="turn-negative"),
        pytest.param("TURN_EVAL", True, "got True", id="turn-bool"),
    ],
)
async def test_evaluation_type_errors(
    db: Database,
    sessions: SessionStore,
    evaluations: EvaluationStorageService,
    evaluation_type: Any,
    turn: Any,
    message: str,
) -> None:
    sid = await new_session(sessions, answered=2)
    with pytest.raises(EvaluationTypeError) as info:
        await evaluations.save_evaluation(sid, evaluation_type, OK, turn=turn)
    assert message in str(info.value)
    assert await stored_count(db, [sid]) == 0


async def test_save_evaluation_dispatches_valid_combinations(
    sessions: SessionStore, evaluations: EvaluationStorageService
) -> None:
    sid = await new_session(sessions, answered=1)
    await evaluations.save_evaluation(sid, "TURN_EVAL", OK, turn=1)
    await evaluations.save_evaluation(sid, EvaluationType.HOLISTIC_FLOW, OK)
    stored = await evaluations.list_evaluations(sid)
    assert [(e.evaluation_type, e.turn) for e in stored] == [
        (EvaluationType.TURN_EVAL, 1),
        (EvaluationType.HOLISTIC_FLOW, None),
    ]


class NotJSON:
    pass


@pytest.mark.parametrize(
    ("details", "message"),
    [
        pytest.param({"analysis": "no score"}, "details.score is required", id="score-missing"),
        pytest.param({"score": 101, "analysis": "a"}, "between 0 and 100, got 101", id="101"),
        pytest.param({"score": -0.5, "analysis": "a"}, "between 0 and 100, got -0.5", id="neg"),
        pytest.param({"score": True, "analysis": "a"}, "got True", id="score-bool"),
        pytest.param({"score": math.nan, "analysis": "a"}, "got nan", id="score-nan"),
        pytest.param({"score": math.inf, "analysis": "a"}, "got inf", id="score-inf"),
        pytest.param({"score": "80", "analysis": "a"}, "got '80'", id="score-string"),
        pytest.param({"score": None, "analysis": "a"}, "got None", id="score-null"),
        pytest.param({"score": 80}, "details.analysis is required", id="analysis-missing"),
        pytest.param({"score": 80, "analysis": 5}, "analysis", id="analysis-number"),
        pytest.param({"score": 80, "analysis": None}, "analysis", id="analysis-null"),
        pytest.param(
            {"score": 80, "analysis": "a", "judge": NotJSON()}, "JSON-serialisable", id="object"
        ),
        pytest.param({"score": 80, "analysis": "a", "keywords": {"x"}}, "JSON", id="set"),
        pytest.param({"score": 80, "analysis": "a", "latency_ms": math.nan}, "JSON", id="nan"),
        pytest.param([("score", 80), ("analysis", "a")], "JSON object, got list", id="list"),
        pytest.param(None, "JSON object, got NoneType", id="none"),
    ],
)
async def test_invalid_details(
    db: Database,
    sessions: SessionStore,
    evaluations: EvaluationStorageService,
    details: Any,
    message: str,
) -> None:
    sid = await new_session(sessions, answered=1)
    attempts: list[Callable[[], Awaitable[object]]] = [
        lambda: evaluations.save_turn_evaluation(sid, 1, details),
        lambda: evaluations.save_holistic_evaluation(sid, details),
        lambda: evaluations.save_evaluation(sid, "TURN_EVAL", details, turn=1),
        lambda: evaluations.save_turn_evaluations([TurnEvaluationInput(sid, 1, details)]),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidDetailsError) as info:
            await attempt()
        assert message in str(info.value)
    assert await stored_count(db, [sid]) == 0


async def test_nul_character_in_details_is_a_typed_error(
    db: Database, sessions: SessionStore, evaluations: EvaluationStorageService
) -> None:
    sid = await new_session(sessions, answered=1)
    with pytest.raises(InvalidDetailsError, match="NUL"):
        await evaluations.save_turn_evaluation(sid, 1, {"score": 50, "analysis": "a\x00b"})
    with pytest.raises(InvalidDetailsError, match="NUL"):
        await evaluations.save_turn_evaluation(
            sid, 1, {"score": 50, "analysis": "ok", "keywords": ["x\x00"]}
        )
    assert await stored_count(db, [sid]) == 0
    with pytest.raises(InvalidTextError, match="answer_text"):
        await sessions.record_answer(sid, 1, "nul\x00answer")


# ----------------------------------------------------------------------------- upsert


async def test_turn_eval_upsert_replaces_in_place(
    sessions: SessionStore, evaluations: EvaluationStorageService
) -> None:
    sid = await new_session(sessions, answered=2)
    first = await evaluations.save_turn_evaluation(
        sid, 1, {"score": 40, "analysis": "first", "feedback": "dropped on re-evaluation"}
    )
    assert first.created is True
    assert (first.session_id, first.turn) == (sid, 1)
    (before,) = await evaluations.list_evaluations(sid)

    second = await evaluations.save_turn_evaluation(sid, 1, {"score": 90, "analysis": "second"})
    assert second.created is False
    assert second.id == first.id
    (after,) = await evaluations.list_evaluations(sid)
    assert after.details == {"score": 90, "analysis": "second"}  # replaced, not merged
    assert after.score == 90
    assert after.created_at == before.created_at
    assert after.updated_at > before.updated_at
    assert after.evaluation_type is EvaluationType.TURN_EVAL


async def test_holistic_upsert_replaces_in_place(
    sessions: SessionStore, evaluations: EvaluationStorageService
) -> None:
    sid = await new_session(sessions, answered=1)
    first = await evaluations.save_holistic_evaluation(sid, {"score": 10, "analysis": "v1"})
    assert first.created is True and first.turn is None
    before = await evaluations.get_holistic_evaluation(sid)
    assert before is not None
    second = await evaluations.save_evaluation(
        sid, "HOLISTIC_FLOW", {"score": 20, "analysis": "v2"}
    )
    assert second.created is False and second.id == first.id
    after = await evaluations.get_holistic_evaluation(sid)
    assert after is not None
    assert after.details == {"score": 20, "analysis": "v2"}
    assert after.created_at == before.created_at
    assert after.updated_at > before.updated_at
    assert len(await evaluations.list_evaluations(sid)) == 1


async def race_to_one_row(
    wide_db: Database,
    save: Callable[[EvaluationStorageService, dict[str, Any]], Awaitable[SavedEvaluation]],
) -> None:
    """CONCURRENT_WRITERS saves of the same evaluation at once: exactly one creates the row."""
    with new_connections(wide_db) as opened:
        results = await asyncio.gather(
            *(
                save(
                    EvaluationStorageService(wide_db),
                    {"score": writer, "analysis": f"writer {writer}"},
                )
                for writer in range(CONCURRENT_WRITERS)
            )
        )
    # Every writer ran on its own connection, at the same time.
    assert len(opened) == CONCURRENT_WRITERS
    assert sum(result.created for result in results) == 1
    assert len({result.id for result in results}) == 1


async def test_concurrent_turn_eval_saves_leave_one_row(
    sessions: SessionStore, evaluations: EvaluationStorageService, wide_db: Database
) -> None:
    sid = await new_session(sessions, answered=1)
    await race_to_one_row(
        wide_db, lambda store, details: store.save_turn_evaluation(sid, 1, details)
    )
    (stored,) = await evaluations.list_evaluations(sid)
    assert stored.details == {"score": stored.score, "analysis": f"writer {int(stored.score)}"}


async def test_concurrent_holistic_saves_leave_one_row(
    sessions: SessionStore, evaluations: EvaluationStorageService, wide_db: Database
) -> None:
    sid = await new_session(sessions, answered=1)
    await race_to_one_row(
        wide_db, lambda store, details: store.save_holistic_evaluation(sid, details)
    )
    stored = await evaluations.list_evaluations(sid, EvaluationType.HOLISTIC_FLOW)
    assert len(stored) == 1
    assert stored[0].details["analysis"] == f"writer {int(stored[0].score)}"


# ------------------------------------------------------------------------------- bulk


async def test_bulk_save_of_1000_is_one_insert_statement(
    db: Database, sessions: SessionStore, evaluations: EvaluationStorageService
) -> None:
    session_ids = await new_sessions(sessions, 100, answered=10)
    items = items_for(session_ids, turns=10, score=50)
    assert len(items) == 1000

    with statements(db) as seen:
        saved = await evaluations.save_turn_evaluations(items)
    assert len(evaluation_inserts(seen)) == 1
    assert len(saved) == 1000
    assert all(row.created for row in saved)
    assert [(row.session_id, row.turn) for row in saved] == [
        (item.session_id, item.turn) for item in items
    ]
    assert len({row.id for row in saved}) == 1000
    assert await stored_count(db, session_ids) == 1000

    # Re-upsert: the update path, still one statement, still 1,000 rows.
    with statements(db) as seen:
        again = await evaluations.save_turn_evaluations(items_for(session_ids, turns=10, score=60))
    assert len(evaluation_inserts(seen)) == 1
    assert not any(row.created for row in again)
    assert [row.id for row in again] == [row.id for row in saved]
    assert await stored_count(db, session_ids) == 1000
    some = await evaluations.list_evaluations(session_ids[37])
    assert [e.score for e in some] == [60.0] * 10


async def test_bulk_with_invalid_details_in_the_middle_stores_nothing(
    db: Database, sessions: SessionStore, evaluations: EvaluationStorageService
) -> None:
    session_ids = await new_sessions(sessions, 100, answered=10)
    items = items_for(session_ids, turns=10)
    bad = items[500]
    items[500] = TurnEvaluationInput(bad.session_id, bad.turn, {"score": 101, "analysis": "x"})
    with statements(db) as seen, pytest.raises(InvalidDetailsError) as info:
        await evaluations.save_turn_evaluations(items)
    assert "item 500" in str(info.value) and "101" in str(info.value)
    assert evaluation_inserts(seen) == []  # refused before the database
    assert await stored_count(db, session_ids) == 0


async def test_bulk_with_missing_turn_in_the_middle_stores_nothing(
    db: Database, sessions: SessionStore, evaluations: EvaluationStorageService
) -> None:
    session_ids = await new_sessions(sessions, 100, answered=10)
    # Some rows exist already: a failed batch must not update them either.
    await evaluations.save_turn_evaluations(items_for(session_ids[:3], turns=10, score=11))
    items = items_for(session_ids, turns=10, score=99)
    bad = items[500]
    items[500] = TurnEvaluationInput(bad.session_id, 11, bad.details)
    with pytest.raises(TurnNotFoundError) as info:
        await evaluations.save_turn_evaluations(items)
    assert (info.value.session_id, info.value.turn) == (bad.session_id, 11)
    assert f"session {bad.session_id} has no turn 11" in str(info.value)
    assert await stored_count(db, session_ids) == 30
    for sid in session_ids[:3]:
        assert {e.score for e in await evaluations.list_evaluations(sid)} == {11.0}


@pytest.mark.parametrize("problem", ["unanswered", "ended", "unknown-session", "duplicate"])
async def test_bulk_with_one_bad_item_raises_its_typed_error(
    db: Database,
    sessions: SessionStore,
    evaluations: EvaluationStorageService,
    problem: str,
) -> None:
    session_ids = await new_sessions(sessions, 10, answered=5)
    items = items_for(session_ids, turns=5)
    expected: type[Exception]
    if problem == "unanswered":
        sid = await new_session(sessions, answered=1, unanswered=1)
        bad = TurnEvaluationInput(sid, 2, OK)
        expected = TurnNotAnsweredError
    elif problem == "ended":
        sid = await new_session(sessions, answered=1)
        await evaluations.save_turn_evaluation(sid, 1, OK)
        await evaluations.save_holistic_evaluation(sid, OK)
        await evaluations.close_session(sid)
        bad = TurnEvaluationInput(sid, 1, {"score": 1, "analysis": "after the end"})
        expected = SessionEndedError
    elif problem == "unknown-session":
        sid = uuid.uuid4()
        bad = TurnEvaluationInput(sid, 1, OK)
        expected = SessionNotFoundError
    else:
        sid = session_ids[0]
        bad = TurnEvaluationInput(sid, 2, OK)  # (session_ids[0], 2) is already in the batch
        expected = EvaluationTypeError
    items.insert(len(items) // 2, bad)
    with pytest.raises(expected) as info:
        await evaluations.save_turn_evaluations(items)
    assert str(sid) in str(info.value)
    assert await stored_count(db, session_ids) == 0
    if problem == "ended":
        (kept,) = await evaluations.list_evaluations(sid, EvaluationType.TURN_EVAL)
        assert kept.details == OK


async def test_empty_bulk_is_a_no_op(evaluations: EvaluationStorageService) -> None:
    assert await evaluations.save_turn_evaluations([]) == []


# ---------------------------------------------------------------------- close_session


async def test_close_session_requires_every_evaluation(
    sessions: SessionStore, evaluations: EvaluationStorageService
) -> None:
    sid = await new_session(sessions, answered=3, unanswered=1)

    with pytest.raises(SessionIncompleteError) as info:
        await evaluations.close_session(sid)
    message = str(info.value)
    assert str(sid) in message
    assert "TURN_EVAL missing for turns [1, 2, 3]" in message
    assert "HOLISTIC_FLOW missing" in message
    assert (await sessions.get_session(sid)).ended_at is None
    assert await evaluations.missing_evaluations(sid) == ([1, 2, 3], True)

    await evaluations.save_turn_evaluation(sid, 1, OK)
    await evaluations.save_holistic_evaluation(sid, OK)
    with pytest.raises(SessionIncompleteError) as info:
        await evaluations.close_session(sid)
    assert "TURN_EVAL missing for turns [2, 3]" in str(info.value)
    assert "HOLISTIC_FLOW" not in str(info.value)
    assert (await sessions.get_session(sid)).ended_at is None

    await evaluations.save_turn_evaluations(
        [TurnEvaluationInput(sid, 2, OK), TurnEvaluationInput(sid, 3, OK)]
    )
    assert await evaluations.missing_evaluations(sid) == ([], False)
    # Turn 4 was asked but never answered: it needs no evaluation.
    ended_at = await evaluations.close_session(sid)
    view = await sessions.get_session(sid)
    assert view.ended_at == ended_at and view.is_ended
    assert await evaluations.close_session(sid) == ended_at  # idempotent


async def test_close_session_names_a_missing_holistic_flow_alone(
    sessions: SessionStore, evaluations: EvaluationStorageService
) -> None:
    sid = await new_session(sessions, answered=2)
    await evaluations.save_turn_evaluations(items_for([sid], turns=2))
    with pytest.raises(SessionIncompleteError) as info:
        await evaluations.close_session(sid)
    assert "HOLISTIC_FLOW missing" in str(info.value)
    assert "TURN_EVAL" not in str(info.value)
    assert (await sessions.get_session(sid)).ended_at is None


async def test_ended_session_refuses_every_change(
    sessions: SessionStore, evaluations: EvaluationStorageService
) -> None:
    sid = await new_session(sessions, answered=2, unanswered=1)
    await evaluations.save_turn_evaluations(items_for([sid], turns=2, score=70))
    await evaluations.save_holistic_evaluation(sid, {"score": 70, "analysis": "flow"})
    await evaluations.close_session(sid)
    before_evaluations = await evaluations.list_evaluations(sid)
    before_transcript = await sessions.get_transcript(sid)

    changes: list[Callable[[], Awaitable[object]]] = [
        lambda: evaluations.save_turn_evaluation(sid, 1, OK),
        lambda: evaluations.save_turn_evaluations([TurnEvaluationInput(sid, 2, OK)]),
        lambda: evaluations.save_holistic_evaluation(sid, OK),
        lambda: evaluations.save_evaluation(sid, "HOLISTIC_FLOW", OK),
        lambda: sessions.record_answer(sid, 3, "late answer"),
        lambda: sessions.add_question(sid, 4, "late question"),
        lambda: sessions.save_transcript(
            sid,
            [TranscriptTurn("Q1", "A1"), TranscriptTurn("Q2", "A2"), TranscriptTurn("Q3", "A3")],
        ),
    ]
    for change in changes:
        with pytest.raises(SessionEndedError) as info:
            await change()
        assert str(sid) in str(info.value)
        assert "has ended" in str(info.value) and "new session" in str(info.value)

    assert await evaluations.list_evaluations(sid) == before_evaluations
    assert await sessions.get_transcript(sid) == before_transcript


# ------------------------------------------------------------------------ SessionStore


async def test_add_question_and_record_answer_are_idempotent(sessions: SessionStore) -> None:
    sid = await new_session(sessions, answered=0)
    asked = await sessions.add_question(sid, 1, "What is MVCC?", question_id=None)
    assert await sessions.add_question(sid, 1, "What is MVCC?") == asked
    with pytest.raises(TurnConflictError, match="turn 1 .* different question"):
        await sessions.add_question(sid, 1, "What is a B-tree?")

    answered = await sessions.record_answer(sid, 1, "Multi-version concurrency control.")
    assert answered.answered_at is not None
    assert await sessions.record_answer(sid, 1, "Multi-version concurrency control.") == answered
    with pytest.raises(TurnConflictError, match="turn 1 .* different answer"):
        await sessions.record_answer(sid, 1, "I do not know.")

    (stored,) = await sessions.get_transcript(sid)
    assert stored == answered
    assert (stored.question_text, stored.answer_text) == (
        "What is MVCC?",
        "Multi-version concurrency control.",
    )


async def test_create_session_with_explicit_id_is_idempotent(sessions: SessionStore) -> None:
    sid = uuid.uuid4()
    first = await sessions.create_session(
        participant_id="alice",
        position="backend",
        language="ko",
        max_turns=3,
        metadata={"source": "test"},
        session_id=sid,
    )
    again = await sessions.create_session(
        participant_id="alice", position="backend", language="ko", max_turns=3, session_id=sid
    )
    assert again == first
    assert first.metadata == {"source": "test"} and first.ended_at is None
    with pytest.raises(ValueError, match="max_turns"):
        await sessions.create_session(
            participant_id="alice", position="backend", language="ko", max_turns=0
        )


async def test_save_transcript_resubmission_changes_nothing(sessions: SessionStore) -> None:
    sid = await new_session(sessions, answered=0)
    transcript = [TranscriptTurn(f"Q{n}", f"A{n}") for n in (1, 2, 3)]
    first = await sessions.save_transcript(sid, transcript)
    assert [(t.turn, t.question_text, t.answer_text) for t in first] == [
        (1, "Q1", "A1"),
        (2, "Q2", "A2"),
        (3, "Q3", "A3"),
    ]
    assert await sessions.save_transcript(sid, transcript) == first
    assert await sessions.get_transcript(sid) == first


async def test_save_transcript_conflict_stores_nothing(sessions: SessionStore) -> None:
    sid = await new_session(sessions, answered=0)
    await sessions.add_question(sid, 1, "Q1")  # asked, not answered yet
    await sessions.add_question(sid, 2, "Q2")
    await sessions.record_answer(sid, 2, "A2")
    before = await sessions.get_transcript(sid)

    # Turn 1 would be filled in before turn 2's conflict is found: it must be rolled back.
    with pytest.raises(TurnConflictError, match="turn 2 .* different answer"):
        await sessions.save_transcript(
            sid,
            [TranscriptTurn("Q1", "A1"), TranscriptTurn("Q2", "other"), TranscriptTurn("Q3", "A3")],
        )
    with pytest.raises(TurnConflictError, match="turn 2 .* different question"):
        await sessions.save_transcript(
            sid, [TranscriptTurn("Q1", "A1"), TranscriptTurn("Q2'", "A2")]
        )
    assert await sessions.get_transcript(sid) == before
    with pytest.raises(ValueError, match="at least one turn"):
        await sessions.save_transcript(sid, [])

    # The consistent transcript fills the missing answer and appends turn 3 (control).
    after = await sessions.save_transcript(
        sid, [TranscriptTurn("Q1", "A1"), TranscriptTurn("Q2", "A2"), TranscriptTurn("Q3", "A3")]
    )
    assert [(t.turn, t.answer_text) for t in after] == [(1, "A1"), (2, "A2"), (3, "A3")]
    assert after[1] == before[1]  # turn 2 untouched
