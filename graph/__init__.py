"""The interview state machine: state, runtime context and graph wiring.

`from graph import build_graph` is the Python entry point.
"""

from graph.context import Context, Services, build_services
from graph.graph import build_graph
from graph.state import InterviewState

__all__ = ["Context", "InterviewState", "Services", "build_graph", "build_services"]
