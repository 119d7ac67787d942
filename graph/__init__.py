"""The interview state machine: state, runtime context and graph wiring.

`from graph import build_graph` is the Python entry point.
"""

from graph.context import Context
from graph.graph import build_graph
from graph.services import Services, build_services, use_services
from graph.state import InputState, InterviewState

__all__ = [
    "Context",
    "InputState",
    "InterviewState",
    "Services",
    "build_graph",
    "build_services",
    "use_services",
]
