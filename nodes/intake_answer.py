"""Node 3, intake_answer: hand the question out with `interrupt()` and take the answer.

The node re-runs from its start when resumed, so nothing happens before `interrupt()`; the
answer is persisted immediately after (an answer accepted is an answer persisted), with an
idempotent write keyed on (session, turn).

An invalid resume value never fails the run: whether this node or the database refuses it
(bad shape, blank, too long, NUL or a lone surrogate, a different answer already stored),
the graph comes back to this node, which interrupts again with the same question and an `error`
saying what was wrong, so the bad value never stays pending in the checkpoint. (The facade
validates before resuming as well.)
Resume with `Command(resume=...)` and one of:
- a string: the answer;
- `{"answer": "...", "stop": true}`: the answer, then end the interview early;
- `{"stop": true}`: end the interview now without answering.
Any dict with an answer may also carry `"emotion"`: the platform's emotion summary of the
answer (seed 000 §4.2, checked by `storage.emotions.check_emotion`). It is stored on the turn's
message only; it never enters the state the judges read.
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from graph.context import Context
from graph.services import resolve_services
from graph.state import InterviewState, TurnRecord
from storage.emotions import check_emotion
from storage.errors import InvalidEmotionError, InvalidTextError, TurnConflictError
from storage.text import text_problem
from storage.views import TurnView

MAX_ANSWER_CHARS = 20_000


class InvalidAnswerError(ValueError):
    """The resume value is not an answer this node understands."""


class Resume(NamedTuple):
    """A resume value, parsed."""

    answer: str | None
    stop: bool
    emotion: dict[str, Any] | None = None


def parse_resume(value: object) -> Resume:
    """The answer (or None), the stop request and the emotion summary of a resume value.

    Raises `InvalidAnswerError` (or `InvalidEmotionError`, naming the field) otherwise.
    """
    emotion: dict[str, Any] | None = None
    if isinstance(value, str):
        answer: object = value
        stop = False
    elif isinstance(value, dict):
        unknown = set(value) - {"answer", "stop", "emotion"}
        if unknown:
            raise InvalidAnswerError(
                f"unknown resume keys {sorted(map(str, unknown))}; use answer, stop, emotion"
            )
        if value.get("emotion") is not None:
            if value.get("answer") is None:
                raise InvalidAnswerError("emotion describes an answer: send it with 'answer'")
            emotion = check_emotion(value["emotion"])
        answer = value.get("answer")
        stop_value = value.get("stop", False)
        if not isinstance(stop_value, bool):
            raise InvalidAnswerError(f"stop must be a boolean, got {type(stop_value).__name__}")
        stop = stop_value
        if answer is None and not stop:
            raise InvalidAnswerError("resume value needs an 'answer' (or 'stop': true)")
    else:
        raise InvalidAnswerError(
            f"resume with an answer string or {{'answer': ..., 'stop': ...}}, got "
            f"{type(value).__name__}"
        )
    if answer is not None and not isinstance(answer, str):
        raise InvalidAnswerError(f"answer must be a string, got {type(answer).__name__}")
    if answer is not None:
        if len(answer) > MAX_ANSWER_CHARS:
            raise InvalidAnswerError(f"answer is longer than {MAX_ANSWER_CHARS} characters")
        if not answer.strip():
            raise InvalidAnswerError("answer must not be blank (resume with stop to end)")
        problem = text_problem(answer)
        if problem is not None:
            raise InvalidAnswerError(f"answer {problem}")
    return Resume(answer, stop, emotion)


async def _record(
    state: InterviewState, runtime: Runtime[Context], turn: int, resume: Resume
) -> TurnView:
    services = await resolve_services(runtime.context)
    assert state.session_id is not None and resume.answer is not None
    return await services.storage.sessions.record_answer(
        uuid.UUID(state.session_id), turn, resume.answer, resume.emotion
    )


async def intake_answer(state: InterviewState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Interrupt with the pending question; store the answer given on resume.

    A refused value ends this execution with `answer_error` set, and the graph comes straight
    back here to ask again (one interrupt per execution). Looping on `interrupt()` inside one
    execution would replay the refused values from the checkpoint on every later resume,
    after LangGraph's serializer may have changed them (a lone surrogate comes back as "?",
    which would then pass as an answer).
    """
    current = state.turns[-1]
    prompt: dict[str, Any] = {
        "session_id": state.session_id,
        "turn": current["turn"],
        "max_turns": state.max_turns,
        "question": current["question"],
        "category": current["category"],
    }
    if state.answer_error:
        prompt["error"] = state.answer_error
    value = interrupt(prompt)
    try:
        resume = parse_resume(value)
        if resume.answer is None:
            return {"stop_requested": True, "answer_error": None}
        stored = await _record(state, runtime, current["turn"], resume)
    except (InvalidAnswerError, InvalidEmotionError, InvalidTextError, TurnConflictError) as exc:
        # Ask again, saying what was wrong: a refused value never stays pending (a raise
        # here would leave it in the checkpoint, to fail every later resume).
        return {"answer_error": str(exc)}
    record = TurnRecord(
        turn=current["turn"],
        question=current["question"],
        question_id=current["question_id"],
        category=current["category"],
        answer=stored.answer_text,
    )
    return {"turns": [record], "stop_requested": resume.stop, "answer_error": None}
