"""Every database rule rejects a violating RAW SQL statement, bypassing the services.

The service validates first, but the schema is the last line of defence: a script, a
migration or a buggy caller writing SQL directly must hit the same rules. Each rejected
statement is checked for its SQLSTATE and the name of the constraint (or type) that fired.
Valid statements are run too, as controls, so a test cannot pass with a broken set-up.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from storage.database import Database
from storage.models import EvaluationType, PromptEvaluation
from storage.sessions import SessionStore, TranscriptTurn

pytestmark = pytest.mark.integration

GOOD = {"score": 80, "analysis": "clear, specific answer"}

INSERT_EVAL = (
    "INSERT INTO prompt_evaluations (session_id, turn, evaluation_type, details) "
    "VALUES (CAST(:sid AS uuid), :turn, CAST(:etype AS evaluation_type_enum), "
    "CAST(:details AS jsonb))"
)

# SQLSTATEs
CHECK_VIOLATION = "23514"
UNIQUE_VIOLATION = "23505"
FK_VIOLATION = "23503"
NOT_NULL_VIOLATION = "23502"
INVALID_TEXT_REPRESENTATION = "22P02"


async def new_session(sessions: SessionStore, turns: int = 2) -> uuid.UUID:
    """A session with `turns` answered turns, created through the SessionStore API."""
    view = await sessions.create_session(
        participant_id=f"p-{uuid.uuid4().hex[:8]}",
        position="backend",
        language="en",
        max_turns=max(turns, 1),
    )
    await sessions.save_transcript(
        view.id,
        [
            TranscriptTurn(question_text=f"question {n}", answer_text=f"answer {n}")
            for n in range(1, turns + 1)
        ],
    )
    return view.id


async def execute(db: Database, sql: str, params: dict[str, Any] | None = None) -> None:
    """Run one statement in its own committed transaction (must succeed)."""
    async with db.engine.begin() as conn:
        await conn.execute(text(sql), params or {})


async def rejected(db: Database, sql: str, params: dict[str, Any] | None = None) -> DBAPIError:
    """Run one statement that must fail; return the error (its transaction is rolled back)."""
    async with db.engine.connect() as conn:
        with pytest.raises(DBAPIError) as info:
            await conn.execute(text(sql), params or {})
        await conn.rollback()
    return info.value


def sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


async def evaluation_count(db: Database, session_id: uuid.UUID) -> int:
    async with db.engine.connect() as conn:
        result = await conn.execute(
            text("SELECT count(*) FROM prompt_evaluations WHERE session_id = CAST(:s AS uuid)"),
            {"s": str(session_id)},
        )
        return int(result.scalar_one())


def eval_params(
    session_id: uuid.UUID, turn: int | None, etype: str = "TURN_EVAL", details: Any = GOOD
) -> dict[str, Any]:
    return {
        "sid": str(session_id),
        "turn": turn,
        "etype": etype,
        "details": details if details is None or isinstance(details, str) else json.dumps(details),
    }


async def test_valid_rows_are_accepted(db: Database, sessions: SessionStore) -> None:
    sid = await new_session(sessions)
    await execute(db, INSERT_EVAL, eval_params(sid, 1))
    await execute(db, INSERT_EVAL, eval_params(sid, 2, details={"score": 0, "analysis": ""}))
    await execute(
        db,
        INSERT_EVAL,
        eval_params(sid, None, "HOLISTIC_FLOW", {"score": 100, "analysis": "x", "extra": [1]}),
    )
    assert await evaluation_count(db, sid) == 3


@pytest.mark.parametrize("score", [0, 0.0, 55.5, 100, 100.0, 1e2])
async def test_boundary_scores_are_accepted(
    db: Database, sessions: SessionStore, score: float
) -> None:
    sid = await new_session(sessions, turns=1)
    await execute(db, INSERT_EVAL, eval_params(sid, 1, details={"score": score, "analysis": "a"}))
    assert await evaluation_count(db, sid) == 1


async def test_unknown_enum_value_is_rejected(db: Database, sessions: SessionStore) -> None:
    sid = await new_session(sessions)
    error = await rejected(db, INSERT_EVAL, eval_params(sid, 1, "FINAL"))
    assert sqlstate(error) == INVALID_TEXT_REPRESENTATION
    assert "evaluation_type_enum" in str(error)
    assert "FINAL" in str(error)
    # Without the cast, a literal is rejected the same way.
    error = await rejected(
        db,
        "INSERT INTO prompt_evaluations (session_id, turn, evaluation_type, details) "
        'VALUES (CAST(:sid AS uuid), 1, \'turn_eval\', \'{"score": 1, "analysis": "a"}\')',
        {"sid": str(sid)},
    )
    assert sqlstate(error) == INVALID_TEXT_REPRESENTATION
    assert "evaluation_type_enum" in str(error)
    assert await evaluation_count(db, sid) == 0


async def test_turn_eval_without_turn_is_rejected(db: Database, sessions: SessionStore) -> None:
    sid = await new_session(sessions)
    error = await rejected(db, INSERT_EVAL, eval_params(sid, None, "TURN_EVAL"))
    assert isinstance(error, IntegrityError)
    assert sqlstate(error) == CHECK_VIOLATION
    assert "ck_prompt_evaluations_turn_matches_type" in str(error)


async def test_holistic_flow_with_turn_is_rejected(db: Database, sessions: SessionStore) -> None:
    sid = await new_session(sessions)
    # Turn 1 exists, so only the type/turn CHECK can reject the row.
    error = await rejected(db, INSERT_EVAL, eval_params(sid, 1, "HOLISTIC_FLOW"))
    assert isinstance(error, IntegrityError)
    assert sqlstate(error) == CHECK_VIOLATION
    assert "ck_prompt_evaluations_turn_matches_type" in str(error)
    assert await evaluation_count(db, sid) == 0


@pytest.mark.parametrize(
    "details",
    [
        pytest.param({"analysis": "no score"}, id="score missing"),
        pytest.param({"score": 101, "analysis": "a"}, id="score above 100"),
        pytest.param({"score": -1, "analysis": "a"}, id="score below 0"),
        pytest.param({"score": 100.0001, "analysis": "a"}, id="score just above 100"),
        pytest.param({"score": "80", "analysis": "a"}, id="score is a string"),
        pytest.param({"score": True, "analysis": "a"}, id="score is a boolean"),
        pytest.param({"score": None, "analysis": "a"}, id="score is JSON null"),
        pytest.param({"score": [80], "analysis": "a"}, id="score is an array"),
        pytest.param({"score": 80}, id="analysis missing"),
        pytest.param({"score": 80, "analysis": 5}, id="analysis is a number"),
        pytest.param({"score": 80, "analysis": None}, id="analysis is JSON null"),
        pytest.param({"score": 80, "analysis": ["a"]}, id="analysis is an array"),
        pytest.param({}, id="empty object"),
        pytest.param('[80, "a"]', id="array instead of object"),
        pytest.param('"text"', id="string instead of object"),
        pytest.param("80", id="number instead of object"),
        pytest.param("null", id="JSON null"),
    ],
)
async def test_malformed_details_are_rejected(
    db: Database, sessions: SessionStore, details: Any
) -> None:
    sid = await new_session(sessions, turns=1)
    for etype, turn in (("TURN_EVAL", 1), ("HOLISTIC_FLOW", None)):
        error = await rejected(db, INSERT_EVAL, eval_params(sid, turn, etype, details))
        assert isinstance(error, IntegrityError), details
        assert sqlstate(error) == CHECK_VIOLATION, details
        assert "ck_prompt_evaluations_details_shape" in str(error), details
    assert await evaluation_count(db, sid) == 0


async def test_sql_null_details_are_rejected(db: Database, sessions: SessionStore) -> None:
    sid = await new_session(sessions, turns=1)
    error = await rejected(db, INSERT_EVAL, eval_params(sid, 1, details=None))
    assert isinstance(error, IntegrityError)
    assert sqlstate(error) == NOT_NULL_VIOLATION
    assert '"details"' in str(error)
    assert await evaluation_count(db, sid) == 0


async def test_orm_none_details_become_sql_null_and_are_rejected(
    db: Database, sessions: SessionStore
) -> None:
    """JSONB(none_as_null=True): Python None is SQL NULL, not a JSON null slipping through."""
    sid = await new_session(sessions, turns=1)
    async with db.engine.connect() as conn:
        with pytest.raises(IntegrityError) as info:
            await conn.execute(
                insert(PromptEvaluation).values(
                    session_id=sid,
                    turn=1,
                    evaluation_type=EvaluationType.TURN_EVAL,
                    details=None,
                )
            )
    assert sqlstate(info.value) == NOT_NULL_VIOLATION
    assert await evaluation_count(db, sid) == 0


async def test_duplicate_turn_eval_is_rejected(db: Database, sessions: SessionStore) -> None:
    sid = await new_session(sessions)
    await execute(db, INSERT_EVAL, eval_params(sid, 1))
    error = await rejected(
        db, INSERT_EVAL, eval_params(sid, 1, details={"score": 1, "analysis": "again"})
    )
    assert isinstance(error, IntegrityError)
    assert sqlstate(error) == UNIQUE_VIOLATION
    assert "uq_prompt_evaluations_turn_eval" in str(error)
    # Another turn of the same session is fine: the index is on (session, turn).
    await execute(db, INSERT_EVAL, eval_params(sid, 2))
    assert await evaluation_count(db, sid) == 2


async def test_second_holistic_flow_is_rejected(db: Database, sessions: SessionStore) -> None:
    sid = await new_session(sessions)
    await execute(db, INSERT_EVAL, eval_params(sid, None, "HOLISTIC_FLOW"))
    error = await rejected(db, INSERT_EVAL, eval_params(sid, None, "HOLISTIC_FLOW"))
    assert isinstance(error, IntegrityError)
    assert sqlstate(error) == UNIQUE_VIOLATION
    assert "uq_prompt_evaluations_holistic_flow" in str(error)
    # A HOLISTIC_FLOW of another session does not collide.
    other = await new_session(sessions)
    await execute(db, INSERT_EVAL, eval_params(other, None, "HOLISTIC_FLOW"))
    assert await evaluation_count(db, sid) == 1


async def test_turn_eval_for_a_turn_without_message_is_rejected(
    db: Database, sessions: SessionStore
) -> None:
    sid = await new_session(sessions, turns=2)
    error = await rejected(db, INSERT_EVAL, eval_params(sid, 3))
    assert isinstance(error, IntegrityError)
    assert sqlstate(error) == FK_VIOLATION
    assert "fk_prompt_evaluations_session_id_turn_prompt_messages" in str(error)
    assert await evaluation_count(db, sid) == 0


async def test_evaluation_of_unknown_session_is_rejected(db: Database) -> None:
    error = await rejected(db, INSERT_EVAL, eval_params(uuid.uuid4(), None, "HOLISTIC_FLOW"))
    assert isinstance(error, IntegrityError)
    assert sqlstate(error) == FK_VIOLATION
    assert "fk_prompt_evaluations_session_id_prompt_sessions" in str(error)


async def test_message_rules(db: Database, sessions: SessionStore) -> None:
    sid = await new_session(sessions, turns=1)
    insert_message = (
        "INSERT INTO prompt_messages (session_id, turn, question_text) "
        "VALUES (CAST(:sid AS uuid), :turn, 'q')"
    )
    error = await rejected(db, insert_message, {"sid": str(sid), "turn": 0})
    assert sqlstate(error) == CHECK_VIOLATION
    assert "ck_prompt_messages_turn_positive" in str(error)
    error = await rejected(db, insert_message, {"sid": str(sid), "turn": 1})
    assert sqlstate(error) == UNIQUE_VIOLATION
    assert "uq_prompt_messages_session_id_turn" in str(error)
    error = await rejected(db, insert_message, {"sid": str(uuid.uuid4()), "turn": 1})
    assert sqlstate(error) == FK_VIOLATION
    assert "fk_prompt_messages_session_id_prompt_sessions" in str(error)
    await execute(db, insert_message, {"sid": str(sid), "turn": 2})  # control


async def test_session_rules(db: Database) -> None:
    insert_session = (
        "INSERT INTO prompt_sessions (participant_id, position, language, max_turns, metadata) "
        "VALUES ('p', 'backend', 'en', :max_turns, CAST(:metadata AS jsonb))"
    )
    error = await rejected(db, insert_session, {"max_turns": 0, "metadata": "{}"})
    assert sqlstate(error) == CHECK_VIOLATION
    assert "ck_prompt_sessions_max_turns_positive" in str(error)
    error = await rejected(db, insert_session, {"max_turns": 1, "metadata": None})
    assert sqlstate(error) == NOT_NULL_VIOLATION
    assert '"metadata"' in str(error)
    async with db.engine.connect() as conn:  # control, rolled back
        await conn.execute(text(insert_session), {"max_turns": 1, "metadata": "{}"})
        await conn.rollback()


async def test_deleting_a_session_cascades(db: Database, sessions: SessionStore) -> None:
    sid = await new_session(sessions, turns=3)
    keep = await new_session(sessions, turns=1)
    for turn in (1, 2, 3):
        await execute(db, INSERT_EVAL, eval_params(sid, turn))
    await execute(db, INSERT_EVAL, eval_params(sid, None, "HOLISTIC_FLOW"))
    await execute(db, INSERT_EVAL, eval_params(keep, 1))

    count_sql = (
        "SELECT (SELECT count(*) FROM prompt_messages WHERE session_id = CAST(:s AS uuid)),"
        " (SELECT count(*) FROM prompt_evaluations WHERE session_id = CAST(:s AS uuid))"
    )
    async with db.engine.connect() as conn:
        counts = (await conn.execute(text(count_sql), {"s": str(sid)})).one()
    assert tuple(counts) == (3, 4)

    await execute(db, "DELETE FROM prompt_sessions WHERE id = CAST(:s AS uuid)", {"s": str(sid)})
    async with db.engine.connect() as conn:
        assert tuple((await conn.execute(text(count_sql), {"s": str(sid)})).one()) == (0, 0)
        assert tuple((await conn.execute(text(count_sql), {"s": str(keep)})).one()) == (1, 1)


async def test_deleting_a_message_cascades_to_its_turn_eval(
    db: Database, sessions: SessionStore
) -> None:
    sid = await new_session(sessions, turns=2)
    await execute(db, INSERT_EVAL, eval_params(sid, 1))
    await execute(db, INSERT_EVAL, eval_params(sid, 2))
    await execute(db, INSERT_EVAL, eval_params(sid, None, "HOLISTIC_FLOW"))
    await execute(
        db,
        "DELETE FROM prompt_messages WHERE session_id = CAST(:s AS uuid) AND turn = 2",
        {"s": str(sid)},
    )
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT turn, evaluation_type::text FROM prompt_evaluations"
                    " WHERE session_id = CAST(:s AS uuid) ORDER BY turn NULLS LAST"
                ),
                {"s": str(sid)},
            )
        ).all()
    assert [tuple(row) for row in rows] == [(1, "TURN_EVAL"), (None, "HOLISTIC_FLOW")]


async def test_updates_are_checked_too(db: Database, sessions: SessionStore) -> None:
    """The rules hold for UPDATE, not only INSERT."""
    sid = await new_session(sessions, turns=1)
    await execute(db, INSERT_EVAL, eval_params(sid, 1))
    error = await rejected(
        db,
        "UPDATE prompt_evaluations SET details = details - 'analysis'"
        " WHERE session_id = CAST(:s AS uuid)",
        {"s": str(sid)},
    )
    assert "ck_prompt_evaluations_details_shape" in str(error)
    error = await rejected(
        db,
        "UPDATE prompt_evaluations SET evaluation_type = 'HOLISTIC_FLOW'"
        " WHERE session_id = CAST(:s AS uuid)",
        {"s": str(sid)},
    )
    assert "ck_prompt_evaluations_turn_matches_type" in str(error)
    await execute(
        db,
        "UPDATE prompt_evaluations SET details = jsonb_set(details, '{score}', '42')"
        " WHERE session_id = CAST(:s AS uuid)",
        {"s": str(sid)},
    )
