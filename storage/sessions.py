"""Session and message persistence: create a session, ask a question, record an answer.

Every write is idempotent on its natural key so that graph nodes, which LangGraph may re-run
after an interrupt or a crash, can repeat them safely; a *different* value for a turn that is
already stored is a `TurnConflictError`, never a silent overwrite.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import Database
from storage.emotions import check_emotion
from storage.errors import (
    SessionEndedError,
    SessionNotFoundError,
    TurnConflictError,
    TurnNotFoundError,
)
from storage.models import EVALUATIONS, MESSAGES, SESSIONS, EvaluationType
from storage.settings import DEFAULT_TENANT
from storage.text import check_text
from storage.views import (
    SESSION_COLUMNS,
    TURN_COLUMNS,
    SessionView,
    SubmissionView,
    TurnView,
    joined_views,
)


@dataclass(frozen=True)
class SessionProfile:
    """Who and what a new session is for (the columns `create_session` writes)."""

    participant_id: str
    position: str
    language: str
    max_turns: int
    exam_id: str | None = None
    metadata: dict[str, Any] | None = None
    tenant: str = DEFAULT_TENANT

    def values(self, session_id: uuid.UUID | None) -> dict[str, Any]:
        """The row to insert (`ValueError` for max_turns < 1)."""
        if self.max_turns < 1:
            raise ValueError(f"max_turns must be >= 1 (got {self.max_turns})")
        values: dict[str, Any] = {
            "tenant": self.tenant,
            "participant_id": self.participant_id,
            "exam_id": self.exam_id,
            "position": self.position,
            "language": self.language,
            "max_turns": self.max_turns,
            "metadata": self.metadata or {},
        }
        if session_id is not None:
            values["id"] = session_id
        return values


@dataclass(frozen=True)
class TranscriptTurn:
    """One complete turn of a submitted transcript."""

    question_text: str
    answer_text: str
    question_id: int | None = None
    emotion: dict[str, Any] | None = None
    """Seed 000 §4.2 emotion summary of the answer (checked by `storage.emotions`)."""


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def lock_session(c: AsyncConnection, session_id: uuid.UUID) -> SessionView:
    """Lock the session row (FOR UPDATE) and return it, or raise `SessionNotFoundError`."""
    row = (
        await c.execute(
            select(*SESSION_COLUMNS).where(SESSIONS.c.id == session_id).with_for_update()
        )
    ).one_or_none()
    if row is None:
        raise SessionNotFoundError(session_id)
    return SessionView(**row._mapping)


async def lock_open_session(c: AsyncConnection, session_id: uuid.UUID) -> SessionView:
    """Lock the session row (FOR UPDATE) and check that it exists and has not ended."""
    session = await lock_session(c, session_id)
    if session.is_ended:
        raise SessionEndedError(session_id)
    return session


def _select_turns(session_id: uuid.UUID) -> Select[Any]:
    return select(*TURN_COLUMNS).where(MESSAGES.c.session_id == session_id)


def _check_transcript(turns: Sequence[TranscriptTurn]) -> list[dict[str, Any] | None]:
    """Validate a transcript before any write; return each turn's checked emotion summary."""
    if not turns:
        raise ValueError("a transcript needs at least one turn")
    emotions: list[dict[str, Any] | None] = []
    for number, item in enumerate(turns, start=1):
        check_text(f"transcript[{number}].question_text", item.question_text)
        check_text(f"transcript[{number}].answer_text", item.answer_text)
        emotions.append(
            None
            if item.emotion is None
            else check_emotion(item.emotion, f"transcript[{number}].emotion")
        )
    return emotions


#: New answered turns, as executemany: SQLAlchemy sends the rows in one INSERT ... VALUES
#: statement ("insertmanyvalues") and caches its compiled form, which `.values(list)` (one
#: multi-row statement built per call) could not: it was compiled again for every submission.
_INSERT_ANSWERED_TURNS = (
    insert(MESSAGES)
    .values(answered_at=func.now())
    .returning(*TURN_COLUMNS, sort_by_parameter_order=True)
)


async def _store_transcript(
    c: AsyncConnection,
    session_id: uuid.UUID,
    turns: Sequence[TranscriptTurn],
    emotions: Sequence[dict[str, Any] | None],
    *,
    new_session: bool,
) -> list[TurnView]:
    """Store a checked transcript in the caller's transaction (the session row locked).

    Turns already stored must match; missing answers are filled in; new turns are inserted
    in one statement. Returns every turn of the session in order, from the rows the
    statements returned (a new session has no stored turn to read first).
    """
    stored: dict[int, TurnView] = {}
    if not new_session:
        stored = {
            row.turn: TurnView(**row._mapping) for row in await c.execute(_select_turns(session_id))
        }
    new_rows = []
    for number, (item, emotion) in enumerate(zip(turns, emotions, strict=True), start=1):
        view = stored.get(number)
        if view is None:
            new_rows.append(
                {
                    "session_id": session_id,
                    "turn": number,
                    "question_id": item.question_id,
                    "question_text": item.question_text,
                    "answer_text": item.answer_text,
                    "emotion_summary": emotion,
                }
            )
            continue
        if view.question_text != item.question_text:
            raise TurnConflictError(
                f"turn {number} of session {session_id} already has a different question"
            )
        if view.answer_text is None:
            row = (
                await c.execute(
                    update(MESSAGES)
                    .where(MESSAGES.c.session_id == session_id, MESSAGES.c.turn == number)
                    .values(
                        answer_text=item.answer_text,
                        answered_at=func.now(),
                        emotion_summary=emotion,
                    )
                    .returning(*TURN_COLUMNS)
                )
            ).one()
            stored[number] = TurnView(**row._mapping)
        elif view.answer_text != item.answer_text:
            raise TurnConflictError(
                f"turn {number} of session {session_id} already has a different answer"
            )
        elif view.emotion != emotion:
            raise TurnConflictError(
                f"turn {number} of session {session_id} already has a different emotion"
            )
    if new_rows:
        inserted = await c.execute(_INSERT_ANSWERED_TURNS, new_rows)
        stored.update((row.turn, TurnView(**row._mapping)) for row in inserted)
    return [stored[number] for number in sorted(stored)]


class SessionStore:
    """Sessions and their turns (tables `prompt_sessions`, `prompt_messages`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    async def _insert_or_get(
        c: AsyncConnection, values: dict[str, Any], *, lock: bool
    ) -> tuple[SessionView, bool]:
        """The session inserted now (True), or the one already stored under the explicit id.

        A stored session of another tenant is `SessionNotFoundError`, as if it did not exist.
        With `lock`, a stored session's row is locked FOR UPDATE (a new one is invisible to
        everyone else until the transaction commits).
        """
        inserted = (
            await c.execute(
                insert(SESSIONS)
                .values(**values)
                .on_conflict_do_nothing(index_elements=[SESSIONS.c.id])
                .returning(*SESSION_COLUMNS)
            )
        ).one_or_none()
        if inserted is not None:
            return SessionView(**inserted._mapping), True
        query = select(*SESSION_COLUMNS).where(SESSIONS.c.id == values["id"])
        row = (await c.execute(query.with_for_update() if lock else query)).one()
        session = SessionView(**row._mapping)
        if session.tenant != values["tenant"]:
            raise SessionNotFoundError(session.id)
        return session, False

    async def create_session(
        self,
        *,
        participant_id: str,
        position: str,
        language: str,
        max_turns: int,
        exam_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        session_id: uuid.UUID | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> SessionView:
        """Create a session of `tenant`.

        With an explicit `session_id` an existing one is returned as is, if it belongs to
        `tenant`; another tenant's session is `SessionNotFoundError`, as if it did not exist.
        """
        profile = SessionProfile(
            participant_id, position, language, max_turns, exam_id, metadata, tenant
        )
        async with self._db.connection() as c:
            session, _ = await self._insert_or_get(c, profile.values(session_id), lock=False)
            return session

    async def open_submission(
        self,
        session_id: uuid.UUID,
        profile: SessionProfile,
        transcript: Sequence[TranscriptTurn],
    ) -> SubmissionView:
        """Create or load the session, store its transcript, say what is evaluated already.

        `create_session` + `save_transcript` + a read of the stored evaluations in one
        transaction (a new session: two statements): the submission path's first step.
        Without `transcript` the stored session is re-evaluated as it is (it must exist).
        An ended session is `SessionEndedError`; the rules of `save_transcript` apply, and a
        refused transcript leaves nothing behind, not even a new session row.
        """
        emotions = _check_transcript(transcript) if transcript else []
        values = profile.values(session_id)
        async with self._db.connection() as c:
            if transcript:
                session, new = await self._insert_or_get(c, values, lock=True)
            else:
                session, new = await session_of(c, session_id), False
            if session.is_ended:
                raise SessionEndedError(session.id)
            if transcript:
                turns = await _store_transcript(
                    c, session.id, transcript, emotions, new_session=new
                )
            else:
                turns = [
                    TurnView(**row._mapping)
                    for row in await c.execute(_select_turns(session.id).order_by(MESSAGES.c.turn))
                ]
            evaluated: set[int] = set()
            has_holistic = False
            if not new:
                for row in await c.execute(
                    select(EVALUATIONS.c.turn, EVALUATIONS.c.evaluation_type).where(
                        EVALUATIONS.c.session_id == session.id
                    )
                ):
                    if row.evaluation_type is EvaluationType.HOLISTIC_FLOW:
                        has_holistic = True
                    else:
                        evaluated.add(row.turn)
            return SubmissionView(session, turns, frozenset(evaluated), has_holistic)

    async def get_session(self, session_id: uuid.UUID, *, tenant: str | None = None) -> SessionView:
        """The session, or `SessionNotFoundError`.

        With `tenant`, a session of another tenant is not found either (same error, same
        message: a caller cannot tell another tenant's session from a missing one).
        """
        async with self._db.connection() as c:
            return await session_of(c, session_id, tenant=tenant)

    async def existing_ids(self, session_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of `session_ids` are stored (any tenant): one query for a whole batch."""
        if not session_ids:
            return set()
        async with self._db.connection() as c:
            rows = await c.scalars(
                select(SESSIONS.c.id).where(SESSIONS.c.id.in_(list(session_ids)))
            )
            return set(rows)

    async def set_candidate_token(self, session_id: uuid.UUID, token: str) -> None:
        """Store the SHA-256 of `token` as the session's candidate token (replacing any)."""
        async with self._db.connection() as c:
            updated = await c.scalar(
                update(SESSIONS)
                .where(SESSIONS.c.id == session_id)
                .values(candidate_token_sha256=_token_digest(token))
                .returning(SESSIONS.c.id)
            )
        if updated is None:
            raise SessionNotFoundError(session_id)

    async def session_for_candidate(self, session_id: uuid.UUID, token: str) -> SessionView:
        """The session whose candidate token is `token`, else `SessionNotFoundError`."""
        async with self._db.connection() as c:
            row = (
                await c.execute(
                    select(*SESSION_COLUMNS, SESSIONS.c.candidate_token_sha256).where(
                        SESSIONS.c.id == session_id
                    )
                )
            ).one_or_none()
        stored = row.candidate_token_sha256 if row is not None else None
        if row is None or stored is None or not hmac.compare_digest(stored, _token_digest(token)):
            raise SessionNotFoundError(session_id)
        fields = dict(row._mapping)
        del fields["candidate_token_sha256"]
        return SessionView(**fields)

    async def list_sessions(
        self, *, position: str | None = None, ended: bool | None = None, limit: int = 1000
    ) -> list[SessionView]:
        """Most recent sessions first, optionally of one position / only ended or open ones."""
        query = select(*SESSION_COLUMNS).order_by(SESSIONS.c.started_at.desc()).limit(limit)
        if position is not None:
            query = query.where(SESSIONS.c.position == position)
        if ended is not None:
            column = SESSIONS.c.ended_at
            query = query.where(column.is_not(None) if ended else column.is_(None))
        async with self._db.connection() as c:
            return [SessionView(**row._mapping) for row in await c.execute(query)]

    async def get_transcript(self, session_id: uuid.UUID) -> list[TurnView]:
        """All turns of the session in order (`SessionNotFoundError` if it does not exist)."""
        async with self._db.connection() as c:
            return await transcript_of(c, session_id)

    async def add_question(
        self,
        session_id: uuid.UUID,
        turn: int,
        question_text: str,
        question_id: int | None = None,
    ) -> TurnView:
        """Store the question of `turn`; repeating the same question is a no-op."""
        if turn < 1:
            raise TurnNotFoundError(session_id, turn)
        check_text("question_text", question_text)
        async with self._db.connection() as c:
            await lock_open_session(c, session_id)
            await c.execute(
                insert(MESSAGES)
                .values(
                    session_id=session_id,
                    turn=turn,
                    question_id=question_id,
                    question_text=question_text,
                )
                .on_conflict_do_nothing(index_elements=[MESSAGES.c.session_id, MESSAGES.c.turn])
            )
            row = (await c.execute(_select_turns(session_id).where(MESSAGES.c.turn == turn))).one()
            if row.question_text != question_text:
                raise TurnConflictError(
                    f"turn {turn} of session {session_id} already has a different question"
                )
            return TurnView(**row._mapping)

    async def record_answer(
        self,
        session_id: uuid.UUID,
        turn: int,
        answer_text: str,
        emotion: dict[str, Any] | None = None,
    ) -> TurnView:
        """Store the answer of `turn` (and its emotion summary); repeating it is a no-op.

        A different answer, or an emotion summary different from the stored one, for a turn
        already answered is a `TurnConflictError`; a repeat without `emotion` is a repeat.
        """
        check_text("answer_text", answer_text)
        if emotion is not None:
            emotion = check_emotion(emotion)
        async with self._db.connection() as c:
            await lock_open_session(c, session_id)
            row = (
                await c.execute(_select_turns(session_id).where(MESSAGES.c.turn == turn))
            ).one_or_none()
            if row is None:
                raise TurnNotFoundError(session_id, turn)
            if row.answer_text is None:
                row = (
                    await c.execute(
                        update(MESSAGES)
                        .where(MESSAGES.c.session_id == session_id, MESSAGES.c.turn == turn)
                        .values(
                            answer_text=answer_text,
                            answered_at=func.now(),
                            emotion_summary=emotion,
                        )
                        .returning(*TURN_COLUMNS)
                    )
                ).one()
            elif row.answer_text != answer_text:
                raise TurnConflictError(
                    f"turn {turn} of session {session_id} already has a different answer"
                )
            elif emotion is not None and row.emotion != emotion:
                raise TurnConflictError(
                    f"turn {turn} of session {session_id} already has a different emotion"
                )
            return TurnView(**row._mapping)

    async def save_transcript(
        self, session_id: uuid.UUID, turns: Sequence[TranscriptTurn]
    ) -> list[TurnView]:
        """Store a complete transcript (submission mode) in one transaction.

        Turns are numbered from 1. Turns already stored must match; missing answers are
        filled in; new turns are inserted. Re-submitting the same transcript changes nothing.
        """
        emotions = _check_transcript(turns)
        async with self._db.connection() as c:
            await lock_open_session(c, session_id)
            return await _store_transcript(c, session_id, turns, emotions, new_session=False)


async def session_of(
    c: AsyncConnection, session_id: uuid.UUID, *, tenant: str | None = None
) -> SessionView:
    """The session, read in the caller's transaction.

    `SessionNotFoundError` if it does not exist or (with `tenant`) belongs to another tenant:
    a caller cannot tell the two apart.
    """
    row = (
        await c.execute(select(*SESSION_COLUMNS).where(SESSIONS.c.id == session_id))
    ).one_or_none()
    if row is None or (tenant is not None and row.tenant != tenant):
        raise SessionNotFoundError(session_id)
    return SessionView(**row._mapping)


async def transcript_of(c: AsyncConnection, session_id: uuid.UUID) -> list[TurnView]:
    """All turns of the session in order, in the caller's transaction (the session must exist).

    One statement: the session's existence is read with its turns (a LEFT JOIN), so a
    session without turns is an empty list and an unknown one `SessionNotFoundError`.
    """
    rows = (
        await c.execute(
            select(SESSIONS.c.id.label("parent"), *TURN_COLUMNS)
            .select_from(SESSIONS.outerjoin(MESSAGES, MESSAGES.c.session_id == SESSIONS.c.id))
            .where(SESSIONS.c.id == session_id)
            .order_by(MESSAGES.c.turn)
        )
    ).all()
    if not rows:
        raise SessionNotFoundError(session_id)
    return joined_views(TurnView, rows, "turn")
