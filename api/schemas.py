"""Request and response bodies of the HTTP API (kept apart from ORM models and state)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.interviews import InterviewService, SessionReport
from graph.state import TranscriptItem
from nodes.intake_answer import MAX_ANSWER_CHARS
from nodes.judges.rubrics import available_positions

Language = Literal["en", "ko"]


def _known_position(value: str) -> str:
    known = available_positions()
    if value not in known:
        raise ValueError(f"unknown position {value!r}; known: {', '.join(known)}")
    return value


class StartInterview(BaseModel):
    """Open a new interview session."""

    model_config = ConfigDict(extra="forbid")

    participant_id: str = Field(min_length=1, max_length=200)
    position: str = Field(description="A position with a rubric, e.g. backend")
    language: Language = "en"
    max_turns: int = Field(default=5, ge=1, le=30)
    exam_id: str | None = Field(default=None, max_length=200)

    _position = field_validator("position")(_known_position)


class AnswerIn(BaseModel):
    """The candidate's answer to the pending question."""

    model_config = ConfigDict(extra="forbid")

    answer: str | None = Field(default=None, max_length=MAX_ANSWER_CHARS)
    stop: bool = Field(default=False, description="End the interview after this answer")

    @field_validator("answer")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("answer must not be blank (send stop=true to end without answering)")
        return value


class TranscriptTurnIn(BaseModel):
    """One turn of a submitted transcript."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=5_000)
    answer: str = Field(max_length=MAX_ANSWER_CHARS)


class SubmitTranscript(BaseModel):
    """A complete conversation to store and evaluate."""

    model_config = ConfigDict(extra="forbid")

    participant_id: str = Field(min_length=1, max_length=200)
    position: str
    language: Language = "en"
    exam_id: str | None = Field(default=None, max_length=200)
    session_id: uuid.UUID | None = Field(
        default=None, description="Re-submit to this session (idempotent); unset = new session"
    )
    reevaluate: bool = False
    transcript: list[TranscriptTurnIn] = Field(min_length=1, max_length=100)

    _position = field_validator("position")(_known_position)

    async def submit(self, interviews: InterviewService) -> SessionReport:
        """Run this submission through the interview facade (HTTP route and batch CLI)."""
        return await interviews.submit_transcript(
            participant_id=self.participant_id, position=self.position,
            language=self.language, exam_id=self.exam_id, session_id=self.session_id,
            reevaluate=self.reevaluate,
            transcript=[TranscriptItem(question=t.question, answer=t.answer)
                        for t in self.transcript],
        )


class QuestionOut(BaseModel):
    """A question waiting for its answer."""

    turn: int
    max_turns: int
    question: str
    category: str | None


class TurnScoreOut(BaseModel):
    """Summary of one TURN_EVAL."""

    turn: int
    score: float
    analysis: str
    flags: list[str]


class InterviewStepOut(BaseModel):
    """Where the interview stands."""

    session_id: uuid.UUID
    status: str
    question: QuestionOut | None
    last_evaluation: TurnScoreOut | None = None
    holistic_score: float | None = None


class TurnReportOut(BaseModel):
    """One turn with its evaluation details."""

    turn: int
    question: str
    answer: str | None
    evaluation: dict[str, Any] | None


class ReportOut(BaseModel):
    """A session's transcript and evaluations."""

    session_id: uuid.UUID
    participant_id: str
    position: str
    language: str
    started_at: str
    ended_at: str | None
    turns: list[TurnReportOut]
    holistic: dict[str, Any] | None
    turn_score_mean: float | None
    flags: list[str]
    status: Literal["open", "completed", "abandoned"] = "open"


class EvaluationOut(BaseModel):
    """A stored evaluation."""

    id: int
    turn: int | None
    evaluation_type: str
    details: dict[str, Any]
    created_at: str
    updated_at: str


class SimilarQuestionOut(BaseModel):
    """A bank question and its cosine distance to the query."""

    id: int
    position: str
    category: str
    language: str
    text: str
    distance: float


class HealthOut(BaseModel):
    """Liveness and what the service runs on."""

    status: Literal["ok"]
    database: Literal["ok"]
    judge: str
    questions: int


class ErrorOut(BaseModel):
    """Every error response."""

    error: str
    detail: str
