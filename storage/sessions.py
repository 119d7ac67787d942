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

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import Database
from storage.emotions import check_emotion
from storage.errors import (
    SessionEndedError,
    SessionNotFoundError,
    TurnConflictError,
    TurnNotFoundError,
)
from storage.models import PromptMessage, PromptSession
from storage.settings import DEFAULT_TENANT
from storage.text import check_text
from storage.views import SessionView, TurnView


@dataclass(frozen=True)
class TranscriptTurn:
    """One complete turn of a submitted transcript."""

    question_text: str
    answer_text: str
    question_id: int | None = None
    emotion: dict[str, Any] | None = None
    """Seed 000 §4.2 emotion summary of the answer (checked by `storage.emotions`)."""


def _session_view(row: PromptSession) -> SessionView:
    return SessionView(
        id=row.id,
        participant_id=row.participant_id,
        exam_id=row.exam_id,
        position=row.position,
        language=row.language,
        max_turns=row.max_turns,
        metadata=dict(row.metadata_),
        started_at=row.started_at,
        ended_at=row.ended_at,
        tenant=row.tenant,
        emotion_summary=row.emotion_summary,
    )


def _turn_view(row: PromptMessage) -> TurnView:
    return TurnView(
        turn=row.turn,
        question_id=row.question_id,
        question_text=row.question_text,
        answer_text=row.answer_text,
        asked_at=row.asked_at,
        answered_at=row.answered_at,
        emotion=row.emotion_summary,
    )


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def lock_open_session(db_session: AsyncSession, session_id: uuid.UUID) -> PromptSession:
    """Lock the session row (FOR UPDATE) and check that it exists and has not ended."""
    row = await db_session.get(PromptSession, session_id, with_for_update=True)
    if row is None:
        raise SessionNotFoundError(session_id)
    if row.ended_at is not None:
        raise SessionEndedError(session_id)
    return row


class SessionStore:
    """Sessions and their turns (tables `prompt_sessions`, `prompt_messages`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

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
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1 (got {max_turns})")
        values: dict[str, Any] = {
            "tenant": tenant,
            "participant_id": participant_id,
            "exam_id": exam_id,
            "position": position,
            "language": language,
            "max_turns": max_turns,
            "metadata_": metadata or {},
        }
        if session_id is not None:
            values["id"] = session_id
        async with self._db.transaction() as s:
            stmt = (
                insert(PromptSession)
                .values(**values)
                .on_conflict_do_nothing(index_elements=[PromptSession.id])
            )
            new_id = (await s.execute(stmt.returning(PromptSession.id))).scalar_one_or_none()
            row = await s.get(PromptSession, new_id or session_id)
            assert row is not None  # inserted now, or existed under the explicit id
            if row.tenant != tenant:
                raise SessionNotFoundError(row.id)
            return _session_view(row)

    async def get_session(self, session_id: uuid.UUID, *, tenant: str | None = None) -> SessionView:
        """The session, or `SessionNotFoundError`.

        With `tenant`, a session of another tenant is not found either (same error, same
        message: a caller cannot tell another tenant's session from a missing one).
        """
        async with self._db.transaction() as s:
            row = await s.get(PromptSession, session_id)
            if row is None or (tenant is not None and row.tenant != tenant):
                raise SessionNotFoundError(session_id)
            return _session_view(row)

    async def existing_ids(self, session_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of `session_ids` are stored (any tenant): one query for a whole batch."""
        if not session_ids:
            return set()
        async with self._db.transaction() as s:
            rows = await s.scalars(
                select(PromptSession.id).where(PromptSession.id.in_(list(session_ids)))
            )
            return set(rows)

    async def set_candidate_token(self, session_id: uuid.UUID, token: str) -> None:
        """Store the SHA-256 of `token` as the session's candidate token (replacing any)."""
        async with self._db.transaction() as s:
            row = await s.get(PromptSession, session_id, with_for_update=True)
            if row is None:
                raise SessionNotFoundError(session_id)
            row.candidate_token_sha256 = _token_digest(token)

    async def session_for_candidate(self, session_id: uuid.UUID, token: str) -> SessionView:
        """The session whose candidate token is `token`, else `SessionNotFoundError`."""
        async with self._db.transaction() as s:
            row = await s.get(PromptSession, session_id)
            stored = row.candidate_token_sha256 if row is not None else None
            if (
                row is None
                or stored is None
                or not hmac.compare_digest(stored, _token_digest(token))
            ):
                raise SessionNotFoundError(session_id)
            return _session_view(row)

    async def list_sessions(
        self, *, position: str | None = None, ended: bool | None = None, limit: int = 1000
    ) -> list[SessionView]:
        """Most recent sessions first, optionally of one position / only ended or open ones."""
        query = select(PromptSession).order_by(PromptSession.started_at.desc()).limit(limit)
        if position is not None:
            query = query.where(PromptSession.position == position)
        if ended is not None:
            column = PromptSession.ended_at
            query = query.where(column.is_not(None) if ended else column.is_(None))
        async with self._db.transaction() as s:
            return [_session_view(row) for row in await s.scalars(query)]

    async def get_transcript(self, session_id: uuid.UUID) -> list[TurnView]:
        """All turns of the session in order (`SessionNotFoundError` if it does not exist)."""
        async with self._db.transaction() as s:
            if await s.get(PromptSession, session_id) is None:
                raise SessionNotFoundError(session_id)
            rows = await s.scalars(
                select(PromptMessage)
                .where(PromptMessage.session_id == session_id)
                .order_by(PromptMessage.turn)
            )
            return [_turn_view(row) for row in rows]

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
        async with self._db.transaction() as s:
            await lock_open_session(s, session_id)
            await s.execute(
                insert(PromptMessage)
                .values(
                    session_id=session_id,
                    turn=turn,
                    question_id=question_id,
                    question_text=question_text,
                )
                .on_conflict_do_nothing(
                    index_elements=[PromptMessage.session_id, PromptMessage.turn]
                )
            )
            row = await s.scalar(
                select(PromptMessage).where(
                    PromptMessage.session_id == session_id, PromptMessage.turn == turn
                )
            )
            assert row is not None
            if row.question_text != question_text:
                raise TurnConflictError(
                    f"turn {turn} of session {session_id} already has a different question"
                )
            return _turn_view(row)

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
        async with self._db.transaction() as s:
            await lock_open_session(s, session_id)
            row = await s.scalar(
                select(PromptMessage).where(
                    PromptMessage.session_id == session_id, PromptMessage.turn == turn
                )
            )
            if row is None:
                raise TurnNotFoundError(session_id, turn)
            if row.answer_text is None:
                row.answer_text = answer_text
                row.answered_at = await s.scalar(select(func.now()))
                row.emotion_summary = emotion
            elif row.answer_text != answer_text:
                raise TurnConflictError(
                    f"turn {turn} of session {session_id} already has a different answer"
                )
            elif emotion is not None and row.emotion_summary != emotion:
                raise TurnConflictError(
                    f"turn {turn} of session {session_id} already has a different emotion"
                )
            return _turn_view(row)

    async def save_transcript(
        self, session_id: uuid.UUID, turns: Sequence[TranscriptTurn]
    ) -> list[TurnView]:
        """Store a complete transcript (submission mode) in one transaction.

        Turns are numbered from 1. Turns already stored must match; missing answers are
        filled in; new turns are inserted. Re-submitting the same transcript changes nothing.
        """
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
        async with self._db.transaction() as s:
            await lock_open_session(s, session_id)
            existing = {
                row.turn: row
                for row in await s.scalars(
                    select(PromptMessage).where(PromptMessage.session_id == session_id)
                )
            }
            new_rows = []
            for number, (item, emotion) in enumerate(zip(turns, emotions, strict=True), start=1):
                row = existing.get(number)
                if row is None:
                    new_rows.append(
                        {
                            "session_id": session_id,
                            "turn": number,
                            "question_id": item.question_id,
                            "question_text": item.question_text,
                            "answer_text": item.answer_text,
                            "answered_at": func.now(),
                            "emotion_summary": emotion,
                        }
                    )
                    continue
                if row.question_text != item.question_text:
                    raise TurnConflictError(
                        f"turn {number} of session {session_id} already has a different question"
                    )
                if row.answer_text is None:
                    await s.execute(
                        update(PromptMessage)
                        .where(PromptMessage.id == row.id)
                        .values(
                            answer_text=item.answer_text,
                            answered_at=func.now(),
                            emotion_summary=emotion,
                        )
                    )
                elif row.answer_text != item.answer_text:
                    raise TurnConflictError(
                        f"turn {number} of session {session_id} already has a different answer"
                    )
                elif row.emotion_summary != emotion:
                    raise TurnConflictError(
                        f"turn {number} of session {session_id} already has a different emotion"
                    )
            if new_rows:
                await s.execute(insert(PromptMessage).values(new_rows))
            rows = await s.scalars(
                select(PromptMessage)
                .where(PromptMessage.session_id == session_id)
                .order_by(PromptMessage.turn)
                .execution_options(populate_existing=True)
            )
            return [_turn_view(row) for row in rows]
