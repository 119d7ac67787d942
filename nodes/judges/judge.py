"""The judge interface: one protocol, two implementations (LLM and heuristic).

Judges are pure evaluators: they take the text to grade and return `EvaluationDetails`;
persisting is the nodes' job (through EvaluationStorageService).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from nodes.judges.details import EvaluationDetails


@dataclass(frozen=True)
class TurnCase:
    """One answered turn to evaluate (node 4, TURN_EVAL)."""

    position: str
    language: str
    turn: int
    question: str
    answer: str
    category: str | None = None
    expected_points: tuple[str, ...] = ()
    """The question's expected points when the caller knows them (e.g. an LLM-written
    question); empty = looked up in the bank, else the position's rubric."""


@dataclass(frozen=True)
class FlowCase:
    """The whole conversation to evaluate (node 6a, HOLISTIC_FLOW)."""

    position: str
    language: str
    turns: tuple[TurnCase, ...]


class JudgeError(RuntimeError):
    """The judge could not produce a valid evaluation (after its retries, for the LLM)."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class Judge(Protocol):
    """Evaluates turns and whole conversations."""

    @property
    def kind(self) -> str:
        """'llm' or 'heuristic' (recorded in `details.judge.kind`)."""
        ...

    async def evaluate_turn(self, case: TurnCase) -> EvaluationDetails:
        """TURN_EVAL details for one answered turn; raises `JudgeError` on failure."""
        ...

    async def evaluate_flow(self, case: FlowCase) -> EvaluationDetails:
        """HOLISTIC_FLOW details for the conversation; raises `JudgeError` on failure."""
        ...
