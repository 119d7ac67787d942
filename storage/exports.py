"""Read stored evaluations as flat rows for exports (CSV, Parquet, JSONL) and notebooks.

One row per evaluation (TURN_EVAL and HOLISTIC_FLOW), joined with its session and, for a
TURN_EVAL, the turn's question, answer and emotion summary (for a HOLISTIC_FLOW, the
session's aggregated one). Filters: the run name and tags kept in the
session's metadata, and a lower bound on the evaluation's time.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select

from storage.database import Database
from storage.models import PromptEvaluation, PromptMessage, PromptSession


@dataclass(frozen=True)
class EvaluationRecord:
    """One stored evaluation with the context an analyst needs beside it."""

    session_id: uuid.UUID
    participant_id: str
    run: str | None
    tags: dict[str, str]
    position: str
    language: str
    ended_at: datetime | None
    evaluation_type: str
    turn: int | None
    question: str | None
    answer: str | None
    details: dict[str, Any]
    created_at: datetime
    emotion: dict[str, Any] | None = None
    """Seed 000 §4.2: the turn's summary (TURN_EVAL) or the session's means (HOLISTIC_FLOW)."""


async def evaluation_records(
    db: Database,
    *,
    run: str | None = None,
    tags: Mapping[str, str] | None = None,
    since: datetime | None = None,
) -> list[EvaluationRecord]:
    """Every evaluation matching the filters, ordered by session, then turn (holistic last)."""
    statement = (
        select(PromptEvaluation, PromptSession, PromptMessage)
        .join(PromptSession, PromptSession.id == PromptEvaluation.session_id)
        .outerjoin(
            PromptMessage,
            and_(
                PromptMessage.session_id == PromptEvaluation.session_id,
                PromptMessage.turn == PromptEvaluation.turn,
            ),
        )
        .order_by(
            PromptSession.started_at,
            PromptSession.id,
            PromptEvaluation.turn.asc().nulls_last(),
        )
    )
    if run is not None:
        statement = statement.where(PromptSession.metadata_["run"].astext == run)
    if tags:
        statement = statement.where(PromptSession.metadata_["tags"].contains(dict(tags)))
    if since is not None:
        statement = statement.where(PromptEvaluation.created_at >= since)
    async with db.transaction() as session:
        result = await session.execute(statement)
        return [
            EvaluationRecord(
                session_id=prompt_session.id,
                participant_id=prompt_session.participant_id,
                run=prompt_session.metadata_.get("run"),
                tags=dict(prompt_session.metadata_.get("tags") or {}),
                position=prompt_session.position,
                language=prompt_session.language,
                ended_at=prompt_session.ended_at,
                evaluation_type=evaluation.evaluation_type.value,
                turn=evaluation.turn,
                question=message.question_text if message is not None else None,
                answer=message.answer_text if message is not None else None,
                details=dict(evaluation.details),
                created_at=evaluation.created_at,
                emotion=(
                    message.emotion_summary
                    if message is not None
                    else prompt_session.emotion_summary
                ),
            )
            for evaluation, prompt_session, message in result.all()
        ]
