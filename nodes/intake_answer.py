"""Node 3, intake_answer: hand the question out with `interrupt()` and take the answer.

The node re-runs from its start when resumed, so nothing happens before `interrupt()`; the
answer is persisted immediately after (an answer accepted is an answer persisted), with an
idempotent write keyed on (session, turn).

An invalid resume value does not fail the run: the node interrupts again with the same
question and an `error` saying what was wrong. Resume with `Command(resume=...)` and one of:
- a string: the answer;
- `{"answer": "...", "stop": true}`: the answer, then end the interview early;
- `{"stop": true}`: end the interview now without answering.
"""

from __future__ import annotations

import uuid
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from graph.context import Context, resolve_services
from graph.state import InterviewState, TurnRecord

MAX_ANSWER_CHARS = 20_000


class InvalidAnswerError(ValueError):
    """The resume value is not an answer this node understands."""


def parse_resume(value: object) -> tuple[str | None, bool]:
    """(answer or None, stop requested) from a resume value; `InvalidAnswerError` otherwise."""
    if isinstance(value, str):
        answer: object = value
        stop = False
    elif isinstance(value, dict):
        unknown = set(value) - {"answer", "stop"}
        if unknown:
            raise InvalidAnswerError(f"unknown resume keys {sorted(unknown)}; use answer, stop")
        answer = value.get("answer")
        stop = bool(value.get("stop", False))
        if answer is None and not stop:
            raise InvalidAnswerError("resume value needs an 'answer' (or 'stop': true)")
    else:
        raise InvalidAnswerError(
            f"resume with an answer string or {{'answer': ..., 'stop': ...}}, got "
            f"{type(value).__name__}"
        )
    if answer is not None and not isinstance(answer, str):
        raise InvalidAnswerError(f"answer must be a string, got {type(answer).__name__}")
    if answer is not None and len(answer) > MAX_ANSWER_CHARS:
        raise InvalidAnswerError(f"answer is longer than {MAX_ANSWER_CHARS} characters")
    return answer, stop


async def intake_answer(state: InterviewState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Interrupt with the pending question; store the answer given on resume."""
    current = state.turns[-1]
    prompt = {
        "session_id": state.session_id,
        "turn": current["turn"],
        "max_turns": state.max_turns,
        "question": current["question"],
        "category": current["category"],
    }
    value = interrupt(prompt)
    while True:
        try:
            answer, stop = parse_resume(value)
            break
        except InvalidAnswerError as exc:
            # Ask again, saying what was wrong; the bad value is never stored.
            value = interrupt({**prompt, "error": str(exc)})
    if answer is None:
        return {"stop_requested": True}
    services = await resolve_services(runtime.context)
    assert state.session_id is not None
    stored = await services.storage.sessions.record_answer(
        uuid.UUID(state.session_id), current["turn"], answer
    )
    record = TurnRecord(
        turn=current["turn"],
        question=current["question"],
        question_id=current["question_id"],
        category=current["category"],
        answer=stored.answer_text,
    )
    return {"turns": [record], "stop_requested": stop}
