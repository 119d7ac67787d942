"""A submitted session costs a fixed, small number of statements, whatever its length.

Counted on the real embedded PostgreSQL with SQLAlchemy engine events (every statement sent,
every transaction begun), around a whole submission run of the graph with a fake LLM:
open (session + transcript + what is evaluated, one transaction), the TURN_EVALs (one
upsert), the HOLISTIC_FLOW (one upsert), close (lock, check, update).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import event

from graph import Services, build_graph, use_services
from nodes.close_session import EvaluationIncompleteError
from nodes.judges.llm.judge import LLMJudge
from nodes.question_generation import BankQuestionGenerator
from storage.errors import SessionEndedError, SessionNotFoundError
from storage.locks import SessionLocks
from storage.models import EvaluationType
from storage.services import Storage
from tests.integration.test_graph_llm import judgement, submission
from tests.integration.test_turn_writes import failing_on_turn
from tests.support.fake_chat import ScriptedChatModel

pytestmark = pytest.mark.integration


@dataclass
class Traffic:
    """Statements and transactions seen on an engine."""

    statements: list[str] = field(default_factory=list)
    transactions: int = 0


@contextmanager
def traffic(storage: Storage) -> Iterator[Traffic]:
    """Record what the storage's engine sends while the block runs."""
    seen = Traffic()
    engine = storage.db.engine.sync_engine

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.statements.append(" ".join(statement.split())[:60])

    def on_begin(conn: Any) -> None:
        seen.transactions += 1

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "begin", on_begin)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "begin", on_begin)


def _services(storage: Storage) -> Services:
    judge = LLMJudge(ScriptedChatModel(default=judgement), model_name="fake", max_retries=0)
    return Services(
        storage=storage, judge=judge, question_generator=BankQuestionGenerator(storage.questions)
    )


@pytest.mark.parametrize("turns", [2, 8])
async def test_a_new_submission_takes_seven_statements_in_four_transactions(
    storage: Storage, turns: int
) -> None:
    session_id = uuid.uuid4()
    with use_services(_services(storage)), traffic(storage) as seen:
        result = await build_graph().ainvoke(submission(session_id, turns))
    assert result["status"] == "completed"
    # open: INSERT session, INSERT turns | TURN_EVALs: one upsert | HOLISTIC_FLOW: one
    # upsert | close: lock, completeness, UPDATE. Not one more per turn.
    assert len(seen.statements) == 7, seen.statements
    assert seen.transactions == 4
    rows = await storage.evaluations.list_evaluations(session_id)
    assert [e.turn for e in rows] == [*range(1, turns + 1), None]
    assert rows[-1].evaluation_type is EvaluationType.HOLISTIC_FLOW
    assert (await storage.sessions.get_session(session_id)).ended_at is not None


async def test_a_resubmission_reads_what_is_stored_in_its_opening_transaction(
    storage: Storage,
) -> None:
    session_id = uuid.uuid4()
    failing = LLMJudge(
        ScriptedChatModel(default=failing_on_turn(2)), model_name="fake", max_retries=0
    )
    services = Services(
        storage=storage, judge=failing, question_generator=BankQuestionGenerator(storage.questions)
    )
    with use_services(services), pytest.raises(EvaluationIncompleteError, match="turn 2"):
        await build_graph().ainvoke(submission(session_id, 3))

    with use_services(_services(storage)), traffic(storage) as seen:
        result = await build_graph().ainvoke(submission(session_id, 3))
    assert result["status"] == "completed"
    # open: INSERT (conflict), lock, stored turns, stored evaluations | turn 2's upsert |
    # close: lock, completeness, UPDATE. The HOLISTIC_FLOW stored by the first run stays.
    assert len(seen.statements) == 8, seen.statements
    assert seen.transactions == 3
    assert [e.turn for e in await storage.evaluations.list_evaluations(session_id)] == [
        1,
        2,
        3,
        None,
    ]

    with use_services(_services(storage)), traffic(storage) as seen:
        with pytest.raises(SessionEndedError):
            await build_graph().ainvoke(submission(session_id, 3))
    assert not any(s.startswith(("UPDATE", "DELETE")) for s in seen.statements)


async def test_a_session_record_is_one_transaction_and_hides_other_tenants(
    storage: Storage,
) -> None:
    session_id = uuid.uuid4()
    with use_services(_services(storage)):
        await build_graph().ainvoke(submission(session_id, 2))
    with traffic(storage) as seen:
        record = await storage.session_record(session_id, tenant="default")
    assert seen.transactions == 1 and len(seen.statements) == 3
    assert [t.turn for t in record.turns] == [1, 2]
    assert [e.turn for e in record.evaluations] == [1, 2, None]
    with pytest.raises(SessionNotFoundError):
        await storage.session_record(session_id, tenant="someone-else")
    with pytest.raises(SessionNotFoundError):
        await storage.session_record(uuid.uuid4())


async def test_session_locks_reuse_their_connections(storage: Storage) -> None:
    locks = SessionLocks(storage.db)
    engine = storage.db.lock_engine().sync_engine
    connects: list[object] = []

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        connects.append(dbapi_connection)

    event.listen(engine, "connect", on_connect)
    try:
        for _ in range(3):  # one after another: the pooled connection is reused
            async with locks.hold(uuid.uuid4()):
                pass
    finally:
        event.remove(engine, "connect", on_connect)
    assert len(connects) <= 1
