"""The interview's state: JSON-serialisable values only (ids, text, scores).

`InputState` is what a caller sets (participant, position, mode, transcript...): the graph's
input schema, the form LangGraph Studio shows. `InterviewState` adds what the nodes write.
The TypedDicts come from `typing_extensions`: pydantic (which LangGraph Studio uses to render
the schemas) refuses `typing.TypedDict` before Python 3.12.

Lists keyed by turn number merge by that key, so the parallel branches of a submission (the
turns' evaluations and the flow's) never overwrite each other and a re-evaluated turn replaces
its earlier summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired

from typing_extensions import TypedDict


class TurnRecord(TypedDict):
    """A question asked and, once given, its answer."""

    turn: int
    question: str
    question_id: int | None
    category: str | None
    answer: str | None
    expected_points: NotRequired[list[str]]


class TranscriptItem(TypedDict):
    """One turn of a submitted transcript."""

    question: str
    answer: str
    emotion: NotRequired[dict[str, Any] | None]
    """Seed 000 §4.2 emotion summary of the answer: stored with it, never judged."""


class TurnScore(TypedDict):
    """Summary of a stored TURN_EVAL (the full details are in the database)."""

    turn: int
    score: float
    analysis: str
    flags: list[str]


class HolisticSummary(TypedDict):
    """Summary of the stored HOLISTIC_FLOW."""

    score: float
    analysis: str
    flags: list[str]


class Failure(TypedDict):
    """An evaluation that failed after its retries; the session stays open."""

    target: Literal["turn", "holistic"]
    turn: int | None
    error: str


class TurnTask(TypedDict):
    """What node 4 needs to evaluate one turn (sent with `Send`)."""

    session_id: str
    position: str
    language: str
    turn: int
    question: str
    answer: str
    category: str | None
    expected_points: NotRequired[list[str]]


class TurnBatch(TypedDict):
    """What node 4 receives through `Send`: the turns to judge together.

    One answer in interview mode; every pending turn of a submission in submission mode, so
    that LangGraph schedules one task per submission rather than one per turn.
    """

    tasks: list[TurnTask]


def merge_by_turn(
    current: list[TurnRecord] | list[TurnScore], update: list[TurnRecord] | list[TurnScore]
) -> list[TurnRecord] | list[TurnScore]:
    """Reducer: entries of `update` replace those with the same turn; result sorted by turn."""
    merged = {item["turn"]: item for item in current}
    merged.update({item["turn"]: item for item in update})
    return [merged[turn] for turn in sorted(merged)]  # type: ignore[return-value]


def add_or_reset(current: list[Failure], update: list[Failure] | None) -> list[Failure]:
    """Reducer: append failures; `None` clears them (a new run starts clean)."""
    return [] if update is None else current + update


Mode = Literal["interview", "submission"]
Status = Literal["new", "in_progress", "evaluating", "completed", "abandoned"]


@dataclass(kw_only=True)
class InputState:
    """What a caller sets to start (or continue) one interview or submission."""

    session_id: str | None = None
    """Existing session to continue; unset = the thread id if it is a UUID, else a new one."""
    participant_id: str = "anonymous"
    """Who is interviewed (an id from the calling platform)."""
    exam_id: str | None = None
    """Optional exam or campaign id stored with the session."""
    position: str = "backend"
    """A position with a rubric: backend, frontend, data_ml, devops or product."""
    language: str = "en"
    """Language of the questions and of the analyses: en or ko."""
    max_turns: int = 5
    """Questions to ask before the whole interview is evaluated."""
    mode: Mode = "interview"
    """`interview` asks questions one by one; `submission` evaluates `transcript` at once."""
    transcript: list[TranscriptItem] = field(default_factory=list)
    """Submission mode: the complete conversation to store and evaluate."""
    reevaluate: bool = False
    """Submission mode: re-judge turns that already have a TURN_EVAL (updated in place)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Stored with a new session: its run name (`run`) and `tags`, for exports and notebooks."""


@dataclass(kw_only=True)
class InterviewState(InputState):
    """State of one interview (or one submitted transcript) = one session."""

    turns: Annotated[list[TurnRecord], merge_by_turn] = field(default_factory=list)
    pending_turns: list[int] = field(default_factory=list)
    holistic_pending: bool = True
    turn_evaluations: Annotated[list[TurnScore], merge_by_turn] = field(default_factory=list)
    holistic: HolisticSummary | None = None
    failures: Annotated[list[Failure], add_or_reset] = field(default_factory=list)
    stop_requested: bool = False
    answer_error: str | None = None
    """Why the last resume value was refused; intake_answer asks again, saying so."""
    status: Status = "new"
    ended_at: str | None = None

    def answered_turns(self) -> list[TurnRecord]:
        """Turns whose answer has arrived, in order."""
        return [turn for turn in self.turns if turn["answer"] is not None]
