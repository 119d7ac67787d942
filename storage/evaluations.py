"""EvaluationStorageService: the one gateway through which evaluations reach the database.

It validates before the database (type/turn rule, score range, required keys, session exists
and is open, turn exists and is answered) and raises typed errors; the database enforces the
same rules again. Every save is one set-based `INSERT ... SELECT ... ON CONFLICT DO UPDATE` on
the partial unique index: re-evaluation updates in place (`created_at` kept, `updated_at`
bumped) and concurrent duplicate saves can never produce two rows. The SELECT joins the
session row `FOR SHARE`, so a save and `close_session` (which takes `FOR UPDATE`) serialise.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Result, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Boolean, Integer

from storage.database import Database
from storage.emotions import summarise
from storage.errors import (
    EvaluationTypeError,
    InvalidDetailsError,
    SessionEndedError,
    SessionIncompleteError,
    SessionNotFoundError,
    TurnNotAnsweredError,
    TurnNotFoundError,
)
from storage.models import EVALUATIONS, MESSAGES, SESSIONS, EvaluationType
from storage.sessions import lock_session
from storage.views import EVALUATION_COLUMNS, EvaluationView, SavedEvaluation, joined_views


@dataclass(frozen=True)
class TurnEvaluationInput:
    """One TURN_EVAL to save in a bulk call."""

    session_id: uuid.UUID
    turn: int
    details: Mapping[str, Any]


def validate_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """Return `details` as a plain dict, or raise `InvalidDetailsError` naming the problem."""
    if not isinstance(details, Mapping):
        raise InvalidDetailsError(f"details must be a JSON object, got {type(details).__name__}")
    score = details.get("score")
    if "score" not in details:
        raise InvalidDetailsError("details.score is required (a number from 0 to 100)")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise InvalidDetailsError(f"details.score must be a number from 0 to 100, got {score!r}")
    if not 0 <= score <= 100:
        raise InvalidDetailsError(f"details.score must be between 0 and 100, got {score}")
    analysis = details.get("analysis")
    if not isinstance(analysis, str):
        raise InvalidDetailsError("details.analysis is required and must be a string")
    try:
        json.dumps(details, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidDetailsError(f"details must be JSON-serialisable: {exc}") from exc
    if _has_nul(details):
        raise InvalidDetailsError("details must not contain NUL characters (\\u0000)")
    return dict(details)


def _has_nul(value: object) -> bool:
    """Whether a JSON value holds a NUL character, which PostgreSQL's jsonb refuses."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return False


def _check_turn(turn: object) -> int:
    if isinstance(turn, bool) or not isinstance(turn, int) or turn < 1:
        raise EvaluationTypeError(f"TURN_EVAL needs a turn number >= 1, got {turn!r}")
    return turn


_UPSERT_TURN_EVALS = text(
    """
    INSERT INTO prompt_evaluations (session_id, turn, evaluation_type, details)
    SELECT i.session_id, i.turn, 'TURN_EVAL', i.details
    FROM unnest(:session_ids, :turns, :details) AS i(session_id, turn, details)
    JOIN (SELECT id FROM prompt_sessions
          WHERE id = ANY(:session_ids) AND ended_at IS NULL FOR SHARE) AS s
      ON s.id = i.session_id
    JOIN prompt_messages AS m
      ON m.session_id = i.session_id AND m.turn = i.turn AND m.answer_text IS NOT NULL
    ON CONFLICT (session_id, turn, evaluation_type) WHERE evaluation_type = 'TURN_EVAL'
    DO UPDATE SET details = EXCLUDED.details, updated_at = now()
    RETURNING id, session_id, turn, (xmax = 0) AS created
    """
).bindparams(
    bindparam("session_ids", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("turns", type_=ARRAY(Integer)),
    bindparam("details", type_=ARRAY(JSONB)),
)

_UPSERT_HOLISTIC = text(
    """
    INSERT INTO prompt_evaluations (session_id, turn, evaluation_type, details)
    SELECT s.id, NULL, 'HOLISTIC_FLOW', :details
    FROM (SELECT id FROM prompt_sessions
          WHERE id = :session_id AND ended_at IS NULL FOR SHARE) AS s
    ON CONFLICT (session_id) WHERE evaluation_type = 'HOLISTIC_FLOW'
    DO UPDATE SET details = EXCLUDED.details, updated_at = now()
    RETURNING id, session_id, turn, (xmax = 0) AS created
    """
).bindparams(
    bindparam("session_id", type_=UUID(as_uuid=True)),
    bindparam("details", type_=JSONB),
)

_END_SESSION = text(
    "UPDATE prompt_sessions SET ended_at = now(), updated_at = now(), "
    "emotion_summary = :emotion WHERE id = :id RETURNING ended_at"
).bindparams(
    bindparam("id", type_=UUID(as_uuid=True)),
    bindparam("emotion", type_=JSONB(none_as_null=True)),
)


#: Everything `close_session` checks, read in one statement once the session row is locked
#: (a statement of its own, so that it sees what committed while it waited for the lock).
_COMPLETENESS = (
    text(
        """
    SELECT
      ARRAY(SELECT m.turn FROM prompt_messages AS m
            WHERE m.session_id = :id AND m.answer_text IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM prompt_evaluations AS e
                              WHERE e.session_id = m.session_id AND e.turn = m.turn
                                AND e.evaluation_type = 'TURN_EVAL')
            ORDER BY m.turn) AS missing_turns,
      EXISTS (SELECT 1 FROM prompt_evaluations AS e
              WHERE e.session_id = :id AND e.evaluation_type = 'HOLISTIC_FLOW') AS has_holistic,
      (SELECT coalesce(jsonb_agg(m.emotion_summary ORDER BY m.turn), '[]'::jsonb)
       FROM prompt_messages AS m
       WHERE m.session_id = :id AND m.answer_text IS NOT NULL
         AND m.emotion_summary IS NOT NULL) AS emotions
    """
    )
    .bindparams(bindparam("id", type_=UUID(as_uuid=True)))
    .columns(missing_turns=ARRAY(Integer), has_holistic=Boolean, emotions=JSONB)
)

_FIRST_ANSWERED = text(
    "SELECT turn FROM prompt_messages WHERE session_id = :id AND answer_text IS NOT NULL "
    "ORDER BY turn LIMIT 1"
).bindparams(bindparam("id", type_=UUID(as_uuid=True)))


@dataclass(frozen=True)
class _Completeness:
    """What is still missing before a session may close, and its turns' emotion summaries."""

    missing_turns: list[int]
    holistic_missing: bool
    emotions: list[dict[str, Any]]

    @classmethod
    async def read(cls, c: AsyncConnection, session_id: uuid.UUID) -> _Completeness:
        row = (await c.execute(_COMPLETENESS, {"id": session_id})).one()
        return cls(list(row.missing_turns), not row.has_holistic, list(row.emotions))


def _saved(result: Result[Any]) -> list[SavedEvaluation]:
    return [
        SavedEvaluation(id=row.id, session_id=row.session_id, turn=row.turn, created=row.created)
        for row in result
    ]


async def _explain_rejected_turn(c: AsyncConnection, session_id: uuid.UUID, turn: int) -> Exception:
    """Why a TURN_EVAL row was filtered out of the upsert: the typed error to raise."""
    ended_at = (
        await c.execute(select(SESSIONS.c.ended_at).where(SESSIONS.c.id == session_id))
    ).one_or_none()
    if ended_at is None:
        return SessionNotFoundError(session_id)
    if ended_at[0] is not None:
        return SessionEndedError(session_id)
    message = await c.scalar(
        select(MESSAGES.c.id).where(MESSAGES.c.session_id == session_id, MESSAGES.c.turn == turn)
    )
    if message is None:
        return TurnNotFoundError(session_id, turn)
    return TurnNotAnsweredError(session_id, turn)


class EvaluationStorageService:
    """Save, read and close: the evaluation contract of seed 002."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def save_turn_evaluation(
        self, session_id: uuid.UUID, turn: int, details: Mapping[str, Any]
    ) -> SavedEvaluation:
        """Upsert the TURN_EVAL of (session, turn)."""
        (saved,) = await self.save_turn_evaluations(
            [TurnEvaluationInput(session_id=session_id, turn=turn, details=details)]
        )
        return saved

    async def save_turn_evaluations(
        self, items: Sequence[TurnEvaluationInput]
    ) -> list[SavedEvaluation]:
        """Upsert many TURN_EVALs (any sessions) in one statement; all or nothing.

        A bad item (invalid details, unknown or ended session, missing or unanswered turn, or
        the same (session, turn) twice) raises its typed error and nothing is stored.
        """
        if not items:
            return []
        seen: set[tuple[uuid.UUID, int]] = set()
        details_list = []
        for index, item in enumerate(items):
            turn = _check_turn(item.turn)
            key = (item.session_id, turn)
            if key in seen:
                raise EvaluationTypeError(
                    f"item {index}: turn {turn} of session {item.session_id} appears twice"
                )
            seen.add(key)
            try:
                details_list.append(validate_details(item.details))
            except InvalidDetailsError as exc:
                raise InvalidDetailsError(f"item {index} (turn {turn}): {exc}") from exc
        async with self._db.connection() as c:
            result = await c.execute(
                _UPSERT_TURN_EVALS,
                {
                    "session_ids": [item.session_id for item in items],
                    "turns": [item.turn for item in items],
                    "details": details_list,
                },
            )
            saved = _saved(result)
            if len(saved) != len(items):
                stored = {(row.session_id, row.turn) for row in saved}
                missing = next(key for key in seen if key not in stored)
                raise await _explain_rejected_turn(c, *missing)  # rolls the batch back
            by_key = {(row.session_id, row.turn): row for row in saved}
            return [by_key[(item.session_id, item.turn)] for item in items]

    async def save_holistic_evaluation(
        self, session_id: uuid.UUID, details: Mapping[str, Any]
    ) -> SavedEvaluation:
        """Upsert the HOLISTIC_FLOW of the session."""
        payload = validate_details(details)
        async with self._db.connection() as c:
            result = await c.execute(
                _UPSERT_HOLISTIC, {"session_id": session_id, "details": payload}
            )
            saved = _saved(result)
            if not saved:
                exists = await c.scalar(select(SESSIONS.c.id).where(SESSIONS.c.id == session_id))
                if exists is None:
                    raise SessionNotFoundError(session_id)
                raise SessionEndedError(session_id)
            return saved[0]

    async def save_evaluation(
        self,
        session_id: uuid.UUID,
        evaluation_type: EvaluationType | str,
        details: Mapping[str, Any],
        turn: int | None = None,
    ) -> SavedEvaluation:
        """Generic entry point that enforces the type/turn rule with a clear error."""
        try:
            kind = EvaluationType(evaluation_type)
        except ValueError as exc:
            allowed = ", ".join(member.value for member in EvaluationType)
            raise EvaluationTypeError(
                f"evaluation_type must be one of {allowed}, got {evaluation_type!r}"
            ) from exc
        if kind is EvaluationType.HOLISTIC_FLOW:
            if turn is not None:
                raise EvaluationTypeError(
                    f"HOLISTIC_FLOW evaluates the whole session: turn must be None, got {turn!r}"
                )
            return await self.save_holistic_evaluation(session_id, details)
        if turn is None:
            raise EvaluationTypeError("TURN_EVAL needs a turn number, got None")
        return await self.save_turn_evaluation(session_id, turn, details)

    async def list_evaluations(
        self, session_id: uuid.UUID, evaluation_type: EvaluationType | None = None
    ) -> list[EvaluationView]:
        """The session's evaluations, turns in order, HOLISTIC_FLOW last."""
        async with self._db.connection() as c:
            return await evaluations_of(c, session_id, evaluation_type)

    async def get_holistic_evaluation(self, session_id: uuid.UUID) -> EvaluationView | None:
        """The session's HOLISTIC_FLOW, or None if not stored yet."""
        rows = await self.list_evaluations(session_id, EvaluationType.HOLISTIC_FLOW)
        return rows[0] if rows else None

    async def missing_evaluations(self, session_id: uuid.UUID) -> tuple[list[int], bool]:
        """Answered turns without a TURN_EVAL, and whether the HOLISTIC_FLOW is missing."""
        async with self._db.connection() as c:
            state = await _Completeness.read(c, session_id)
        return state.missing_turns, state.holistic_missing

    async def close_session(self, session_id: uuid.UUID) -> datetime:
        """Set `ended_at` once every answered turn has a TURN_EVAL and a HOLISTIC_FLOW exists.

        Idempotent: closing an ended session returns its `ended_at` unchanged. While anything
        is missing it raises `SessionIncompleteError` and the session stays open. Three
        statements: lock the row, read what is missing and the turns' emotion summaries (one
        statement, after the lock), set `ended_at` with the session's emotion summary.
        """

        async def complete(c: AsyncConnection) -> dict[str, Any] | None:
            state = await _Completeness.read(c, session_id)
            if state.missing_turns or state.holistic_missing:
                parts = []
                if state.missing_turns:
                    parts.append(f"TURN_EVAL missing for turns {state.missing_turns}")
                if state.holistic_missing:
                    parts.append("HOLISTIC_FLOW missing")
                raise SessionIncompleteError(
                    f"session {session_id} cannot be closed: {'; '.join(parts)}"
                )
            return summarise(state.emotions)

        return await self._end(session_id, complete)

    async def abandon_session(self, session_id: uuid.UUID) -> datetime:
        """End a session in which no turn was answered: `ended_at` set, nothing evaluated.

        This is how an interview stopped (or submitted) before its first answer ends: there
        is nothing to evaluate, so `close_session`'s rule (every answered turn evaluated plus
        a HOLISTIC_FLOW) cannot apply. Idempotent: an ended session returns its `ended_at`.
        A session with an answered turn raises `SessionIncompleteError` and stays open, so
        an answer is never dropped unevaluated. The row lock (FOR UPDATE, as `record_answer`
        takes) means an answer arriving at the same moment is either stored first (and then
        refuses the abandon) or refused as `SessionEndedError`.
        """

        async def unanswered(c: AsyncConnection) -> None:
            answered = await c.scalar(_FIRST_ANSWERED, {"id": session_id})
            if answered is not None:
                raise SessionIncompleteError(
                    f"session {session_id} cannot be abandoned: turn {answered} is answered; "
                    "evaluate it and close the session instead"
                )

        return await self._end(session_id, unanswered)

    async def _end(
        self,
        session_id: uuid.UUID,
        check: Callable[[AsyncConnection], Awaitable[dict[str, Any] | None]],
    ) -> datetime:
        """Lock the session, return its `ended_at` if set; else `check` it and set `ended_at`.

        `check` raises when the session may not end, else returns its emotion summary. It
        runs after the lock is taken, so it sees every write that committed before.
        """
        async with self._db.connection() as c:
            session = await lock_session(c, session_id)
            if session.ended_at is not None:
                return session.ended_at
            emotion = await check(c)
            ended_at = await c.scalar(_END_SESSION, {"id": session_id, "emotion": emotion})
            assert isinstance(ended_at, datetime)
            return ended_at


async def evaluations_of(
    c: AsyncConnection, session_id: uuid.UUID, evaluation_type: EvaluationType | None = None
) -> list[EvaluationView]:
    """The session's evaluations in the caller's transaction, HOLISTIC_FLOW last.

    `SessionNotFoundError` for an unknown session; an existing one may have none. One
    statement: the session is read with its evaluations (a LEFT JOIN).
    """
    join_on = EVALUATIONS.c.session_id == SESSIONS.c.id
    if evaluation_type is not None:
        join_on &= EVALUATIONS.c.evaluation_type == evaluation_type
    rows = (
        await c.execute(
            select(SESSIONS.c.id.label("parent"), *EVALUATION_COLUMNS)
            .select_from(SESSIONS.outerjoin(EVALUATIONS, join_on))
            .where(SESSIONS.c.id == session_id)
            .order_by(EVALUATIONS.c.turn.asc().nulls_last(), EVALUATIONS.c.id)
        )
    ).all()
    if not rows:
        raise SessionNotFoundError(session_id)
    return joined_views(EvaluationView, rows, "id")
