"""Node 5, route, and the other branch points of the graph (pure functions of the state).

`route` decides after each TURN_EVAL: another question, or the holistic evaluation once
max_turns is reached or a stop was requested. In submission mode all branches meet at
close_session. The fan-out helpers return `Send`s so that the turns' evaluations and the
flow's run in parallel.
"""

from __future__ import annotations

from typing import Literal

from langgraph.types import Send

from graph.state import InterviewState
from nodes.evaluate_turn import turn_batch


def after_open(state: InterviewState) -> list[Send] | Literal["generate_question", "close_session"]:
    """Interview: ask the first question. Submission: every pending evaluation at once.

    The pending turns go to node 4 as one batch (judged concurrently there), in parallel
    with 6a.
    """
    if state.mode == "interview":
        return "generate_question"
    sends = []
    if state.pending_turns:
        sends.append(Send("evaluate_turn", turn_batch(state, state.pending_turns)))
    if state.holistic_pending:
        sends.append(Send("evaluate_holistic_flow", state))
    return sends or "close_session"


def _wrap_up(state: InterviewState) -> Literal["evaluate_holistic_flow", "close_session"]:
    """Evaluate the flow when something was answered; else close as abandoned at once."""
    return "evaluate_holistic_flow" if state.answered_turns() else "close_session"


def after_question(
    state: InterviewState,
) -> Literal["intake_answer", "evaluate_holistic_flow", "close_session"]:
    """Wait for the answer, unless the bank had nothing left to ask."""
    return _wrap_up(state) if state.stop_requested else "intake_answer"


def after_answer(
    state: InterviewState,
) -> Send | Literal["intake_answer", "evaluate_holistic_flow", "close_session"]:
    """Evaluate the answer just given; a stop without an answer goes to 6a (or 7).

    A refused resume value goes back to intake_answer, which asks again with the error.
    """
    if state.answer_error:
        return "intake_answer"
    last = state.turns[-1]
    if last["answer"] is None:
        return _wrap_up(state)
    return Send("evaluate_turn", turn_batch(state, [last["turn"]]))


def route(
    state: InterviewState,
) -> Literal["generate_question", "evaluate_holistic_flow", "close_session"]:
    """Node 5: next question, holistic evaluation, or (submission mode) close."""
    if state.mode == "submission":
        return "close_session"
    if state.stop_requested or len(state.answered_turns()) >= state.max_turns:
        return "evaluate_holistic_flow"
    return "generate_question"
