"""The interview state machine, numbered as in seed 002.

Interview mode:   1 open_session -> 2 generate_question -> 3 intake_answer (interrupt)
                  -> 4 evaluate_turn -> 5 route -> (2 again | 6a) -> 7 close_session
Submission mode:  1 open_session -> [4 evaluate_turn (every pending turn, at once)  ||  6a] -> 7

`graph` (what langgraph.json names) is compiled without a checkpointer: LangGraph Studio and
`langgraph dev` bring their own. Its input schema is `InputState` (what a user sets) and its
context schema `Context` (plain configuration); the services a run needs are resolved from
that configuration by `graph.services`. The API and the CLI call
`build_graph(checkpointer=AsyncPostgresSaver(...))` and bind their own services.
"""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graph.context import Context
from graph.state import InputState, InterviewState
from nodes.close_session import close_session
from nodes.evaluate_holistic_flow import evaluate_holistic_flow
from nodes.evaluate_turn import evaluate_turn
from nodes.generate_question import generate_question
from nodes.intake_answer import intake_answer
from nodes.open_session import open_session
from nodes.route import after_answer, after_open, after_question, route

GRAPH_NAME = "turnjudge"


def build_graph(
    checkpointer: BaseCheckpointSaver[str] | None = None,
) -> CompiledStateGraph[InterviewState, Context, InputState, InterviewState]:
    """Wire the nodes; pass a checkpointer for durable interrupts (thread_id = session id)."""
    builder = StateGraph(InterviewState, context_schema=Context, input_schema=InputState)

    builder.add_node("open_session", open_session)  # 1
    builder.add_node("generate_question", generate_question)  # 2
    builder.add_node("intake_answer", intake_answer)  # 3
    # 4 takes a `TurnBatch` from `Send`, not the state (the stubs only know state-typed nodes).
    builder.add_node("evaluate_turn", evaluate_turn)  # type: ignore[call-overload]
    builder.add_node("evaluate_holistic_flow", evaluate_holistic_flow)  # 6a
    builder.add_node("close_session", close_session)  # 7

    builder.add_edge(START, "open_session")
    # Interview mode asks; submission mode fans out every pending evaluation in parallel.
    builder.add_conditional_edges(
        "open_session",
        after_open,
        ["generate_question", "evaluate_turn", "evaluate_holistic_flow", "close_session"],
    )
    # A stop before any answer skips 6a: close_session then ends the session as abandoned.
    builder.add_conditional_edges(
        "generate_question",
        after_question,
        ["intake_answer", "evaluate_holistic_flow", "close_session"],
    )
    # A refused answer loops back to intake_answer, which asks again saying why.
    builder.add_conditional_edges(
        "intake_answer",
        after_answer,
        ["intake_answer", "evaluate_turn", "evaluate_holistic_flow", "close_session"],
    )
    # 5: route after each turn evaluation.
    builder.add_conditional_edges(
        "evaluate_turn",
        route,
        ["generate_question", "evaluate_holistic_flow", "close_session"],
    )
    builder.add_edge("evaluate_holistic_flow", "close_session")
    builder.add_edge("close_session", END)
    return builder.compile(checkpointer=checkpointer, name=GRAPH_NAME)


#: The graph served by LangGraph Studio / `langgraph dev` (langgraph.json).
graph = build_graph()
