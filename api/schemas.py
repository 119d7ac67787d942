"""Request and response bodies of the HTTP API (kept apart from ORM models and state).

Request models are strict and say in the OpenAPI schema exactly what the server accepts:
positions and languages are enums built from the rubric data, every text has bounds and a
`pattern` (no NUL, no lone surrogate, and not blank where a value is required), integers and
booleans must be JSON integers and booleans (`max_turns: true` is refused), unknown fields
are refused.
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from api.validation import MAX_RUN_CHARS, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS, MAX_TAGS
from graph.state import TranscriptItem
from nodes.intake_answer import MAX_ANSWER_CHARS
from nodes.judges.llm.prompts import LANGUAGE_NAMES
from nodes.judges.rubrics import available_positions
from storage.emotions import (
    FACIAL_MAX_BYTES,
    FACIAL_MAX_DEPTH,
    check_facial_data,
    emotion_vocabulary,
)
from storage.errors import InvalidEmotionError
from storage.text import text_problem

#: Positions that have a rubric (nodes/judges/rubrics/*.json).
Position = StrEnum("Position", {name: name for name in available_positions()})  # type: ignore[misc]
#: Languages the prompts and the judges know (nodes/judges/llm/prompts.py).
Language = StrEnum("Language", {code: code for code in LANGUAGE_NAMES})  # type: ignore[misc]

#: What PostgreSQL text can hold (storage.text.text_problem), as a JSON-schema pattern: no
#: NUL. (Nor a lone surrogate, which is no Unicode character: JSON-schema strings cannot
#: hold one, and the server refuses it; generators cannot take a surrogate range.)
#: One plain repetition, so that generators can honour the lengths.
TEXT_PATTERN = r"^[^\x00]*$"
#: Blank (empty or whitespace only), refused with `"not"`. The class lists exactly what
#: `str.isspace` (so `str.strip`, the facade's test) counts as whitespace: `\s` differs between
#: regex engines (Python's includes U+001C-U+001F, ECMA's and Rust's, which schema validators
#: use, do not), so a key such as "\x1e" would be valid for the schema yet blank here.
BLANK_PATTERN = (
    r"^[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f"
    r"\u205f\u3000]*$"
)
#: The JSON-schema keywords of a required, non-blank, storable text.
NONBLANK_TEXT_SCHEMA: dict[str, Any] = {"pattern": TEXT_PATTERN, "not": {"pattern": BLANK_PATTERN}}
_BLANK = re.compile(BLANK_PATTERN)

MAX_ID_CHARS = 200
MAX_QUESTION_CHARS = 5_000
MAX_QUERY_CHARS = 2_000
MAX_TRANSCRIPT_TURNS = 100


def storable(value: str) -> str:
    """`value` if PostgreSQL text can hold it (the shared `text_problem` check)."""
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def nonblank(value: str) -> str:
    """`value` if storable and not only whitespace."""
    storable(value)
    if _BLANK.match(value) is not None:
        raise ValueError("must not be empty or only whitespace")
    return value


def text_field(max_length: int, description: str, **extra: Any) -> Any:
    """`Field` of a required, non-blank text of at most `max_length` characters."""
    return Field(
        min_length=1,
        max_length=max_length,
        description=description,
        json_schema_extra={**NONBLANK_TEXT_SCHEMA, **extra},
    )


Identifier = Annotated[
    str,
    text_field(MAX_ID_CHARS, "An identifier from the calling platform."),
    AfterValidator(nonblank),
]
Answer = Annotated[
    str,
    text_field(MAX_ANSWER_CHARS, "The candidate's answer; not blank."),
    AfterValidator(nonblank),
]
Question = Annotated[
    str,
    text_field(MAX_QUESTION_CHARS, "The question as it was asked."),
    AfterValidator(nonblank),
]


def json_integer(value: object) -> object:
    """A JSON integer (`5`, or `5.0`, which JSON Schema counts as one), never a bool or text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


CallbackUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2_000,
        pattern=TEXT_PATTERN,
        description="http(s) URL POSTed a signed summary (X-Turnjudge-Signature: "
        "sha256=<HMAC-SHA256 of the body under the tenant's CALLBACK_SECRETS key>) when the "
        "session completes or fails; needs wait=false and a secret for the caller's tenant.",
    ),
    AfterValidator(storable),
]
MaxTurns = Annotated[
    int,
    Field(ge=1, le=30, description="Questions to ask (1-30); an integer."),
    BeforeValidator(json_integer),
]
RunName = Annotated[
    str,
    text_field(
        MAX_RUN_CHARS,
        "Run name stored with the session; exports and notebooks filter by it.",
        examples=["2026-q4-backend"],
    ),
    AfterValidator(nonblank),
]
#: The tags' JSON schema, exactly what `api.validation.check_run` accepts: at most MAX_TAGS
#: entries, keys of 1-64 non-blank storable characters, values of 1-200 storable characters.
TAGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": MAX_TAGS,
    "propertyNames": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_TAG_KEY_CHARS,
        **NONBLANK_TEXT_SCHEMA,
    },
    "additionalProperties": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_TAG_VALUE_CHARS,
        "pattern": TEXT_PATTERN,
    },
    "description": "Free string labels stored with the session (at most "
    f"{MAX_TAGS}); exports and notebooks filter by them.",
    "examples": [{"cohort": "2026-q4", "source": "campus"}],
}
Tags = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=MAX_TAG_KEY_CHARS), AfterValidator(nonblank)],
        Annotated[
            str, Field(min_length=1, max_length=MAX_TAG_VALUE_CHARS), AfterValidator(storable)
        ],
    ],
    Field(max_length=MAX_TAGS),
    WithJsonSchema(TAGS_SCHEMA),
]


#: Emotions of seed 000 §4.2 summaries (storage/data/emotions.json).
Emotion = StrEnum("Emotion", {name: name for name in emotion_vocabulary()})  # type: ignore[misc]
EmotionScore = Annotated[StrictFloat, Field(ge=0, le=1, allow_inf_nan=False)]


def _facial_value_schema(levels: int) -> dict[str, Any]:
    """JSON schema of a value nested `levels` more containers deep at most (no NUL text)."""
    options: list[dict[str, Any]] = [
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "string", "pattern": TEXT_PATTERN},
    ]
    if levels > 0:
        inner = _facial_value_schema(levels - 1)
        options += [
            {"type": "array", "items": inner},
            {
                "type": "object",
                "additionalProperties": inner,
                "propertyNames": {"pattern": TEXT_PATTERN},
            },
        ]
    return {"anyOf": options}


def _facial(value: dict[str, Any]) -> dict[str, Any]:
    try:
        return check_facial_data(value, "facial_expression_data")
    except InvalidEmotionError as exc:
        raise ValueError(str(exc)) from exc


FacialData = Annotated[
    dict[str, Any],
    AfterValidator(_facial),
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {"pattern": TEXT_PATTERN},
            "additionalProperties": _facial_value_schema(FACIAL_MAX_DEPTH - 1),
            "description": f"The analyser's own data, any JSON object: at most {FACIAL_MAX_DEPTH} "
            f"levels deep and {FACIAL_MAX_BYTES} bytes of JSON.",
        }
    ),
]


class EmotionIn(BaseModel):
    """Seed 000 §4.2 emotion summary of one answer, from the platform's own analysis.

    Stored with the answer and summarised on the session; the judges never read it.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # "dominant_emotion is one of the scored emotions" is not in the JSON schema: its
            # exact form (one anyOf branch per emotion) made Schemathesis's generator merge
            # schemas until it failed. The server checks it (422 naming the field).
            "examples": [
                {
                    "dominant_emotion": "confidence",
                    "emotion_scores": {"confidence": 0.85, "nervousness": 0.1, "excitement": 0.05},
                }
            ],
        },
    )

    emotion_scores: dict[Emotion, EmotionScore] = Field(
        min_length=1, description="Score of each detected emotion, 0-1 (known names only)."
    )
    dominant_emotion: Emotion = Field(
        description="One of the scored emotions (a key of emotion_scores), else 422."
    )
    facial_expression_data: FacialData | None = None

    @field_validator("dominant_emotion")
    @classmethod
    def _scored(cls, value: Emotion, info: ValidationInfo) -> Emotion:
        scores = info.data.get("emotion_scores")
        if scores is not None and value not in scores:
            raise ValueError("must be one of the scored emotions")
        return value

    def summary(self) -> dict[str, Any]:
        """The summary as plain JSON (what the facade and the database take)."""
        return self.model_dump(mode="json", exclude_none=True)


class StartInterview(BaseModel):
    """Open a new interview session."""

    model_config = ConfigDict(extra="forbid")

    participant_id: Identifier
    position: Position = Field(description="A position with a rubric.")
    language: Language = Field(default=Language("en"), description="Language of the interview.")
    max_turns: MaxTurns = 5
    exam_id: Identifier | None = None
    run: RunName | None = None
    tags: Tags | None = None


class AnswerIn(BaseModel):
    """The candidate's answer to the pending question, or a stop.

    `answer` is required unless `stop` is true: `{"answer": "..."}`, `{"answer": "...",
    "stop": true}` (answer, then end) and `{"stop": true}` (end now) are accepted; `{}` and
    `{"stop": false}` are refused with 422 `field: body.answer`. `emotion` (optional) goes
    with an answer.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["answer"], "properties": {"answer": {"type": "string"}}},
                {
                    "required": ["stop"],
                    "properties": {"stop": {"const": True}, "emotion": {"type": "null"}},
                },
            ],
            "examples": [
                {"answer": "I would add an index on (user_id, created_at)..."},
                {"stop": True},
            ],
        },
    )

    stop: StrictBool = Field(
        default=False, description="End the interview (after the answer, if one is given)."
    )
    answer: Answer | None = Field(default=None, validate_default=True)
    emotion: EmotionIn | None = Field(
        default=None, description="Emotion summary of the answer (seed 000 §4.2); never judged."
    )

    @field_validator("answer")
    @classmethod
    def _required_unless_stop(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("stop") is not True:
            raise ValueError("answer is required unless stop is true")
        return value

    @field_validator("emotion")
    @classmethod
    def _with_an_answer(cls, value: EmotionIn | None, info: ValidationInfo) -> EmotionIn | None:
        if value is not None and info.data.get("answer") is None:
            raise ValueError("emotion describes an answer: send it with the answer")
        return value


class TranscriptTurnIn(BaseModel):
    """One turn of a submitted transcript."""

    model_config = ConfigDict(extra="forbid")

    question: Question
    answer: Answer
    emotion: EmotionIn | None = Field(
        default=None, description="Emotion summary of the answer (seed 000 §4.2); never judged."
    )

    def item(self) -> TranscriptItem:
        """The facade's transcript item."""
        item = TranscriptItem(question=self.question, answer=self.answer)
        if self.emotion is not None:
            item["emotion"] = self.emotion.summary()
        return item


class SubmitTranscript(BaseModel):
    """A complete conversation to store and evaluate."""

    model_config = ConfigDict(extra="forbid")

    participant_id: Identifier
    position: Position = Field(description="A position with a rubric.")
    language: Language = Field(default=Language("en"), description="Language of the answers.")
    exam_id: Identifier | None = None
    session_id: uuid.UUID | None = Field(
        default=None, description="Re-submit to this session (idempotent); unset = new session"
    )
    reevaluate: StrictBool = False
    transcript: list[TranscriptTurnIn] = Field(min_length=1, max_length=MAX_TRANSCRIPT_TURNS)
    callback_url: CallbackUrl | None = None
    run: RunName | None = None
    tags: Tags | None = None


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


class InterviewStartOut(InterviewStepOut):
    """The first step of a new interview, with the candidate's token."""

    candidate_token: str = Field(
        description="Send as X-Candidate-Token to read and answer this interview (and nothing "
        "else) without the platform's API key. Shown once; only its SHA-256 is stored."
    )


class TurnReportOut(BaseModel):
    """One turn with its evaluation details."""

    turn: int
    question: str
    answer: str | None
    evaluation: dict[str, Any] | None
    emotion: dict[str, Any] | None = Field(
        default=None, description="Emotion summary sent with the answer (seed 000 §4.2)."
    )


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
    status: Literal["open", "queued", "evaluating", "completed", "failed", "abandoned"] = "open"
    run: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    job_id: int | None = Field(default=None, description="The latest background job, if any")
    attempts: int | None = Field(default=None, description="Runs of that job so far")
    error: str | None = Field(default=None, description="Why the job failed (status failed)")
    callback: dict[str, Any] | None = Field(
        default=None, description="Callback delivery: url, attempts, last outcome, delivered"
    )

    emotion: dict[str, Any] | None = Field(
        default=None,
        description="Set when the session closed, if any answer had an emotion "
        "summary: {dominant_emotion, emotion_scores: mean per emotion over those turns, "
        "turns_with_data}.",
    )


class QueuedOut(BaseModel):
    """A submission accepted for background evaluation (202)."""

    session_id: uuid.UUID
    job_id: int | None = Field(description="The evaluation job; null if nothing was queued")
    status: Literal["queued", "evaluating", "completed", "abandoned"] = Field(
        description="`queued` (or `evaluating`: the session's job was already running); "
        "`completed`/`abandoned` when the session was already closed (nothing queued)"
    )


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
