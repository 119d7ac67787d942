"""Typed errors raised by the storage services, each with a message a user can act on."""

from __future__ import annotations

import uuid


class StorageError(RuntimeError):
    """Base class of every storage error.

    A `RuntimeError`, so that LangGraph's server (Studio, `langgraph dev`) shows its message
    instead of "An internal error occurred" (it reveals only builtin error kinds).
    """


class SessionNotFoundError(StorageError):
    """The session id does not exist."""

    def __init__(self, session_id: uuid.UUID) -> None:
        super().__init__(f"session {session_id} does not exist")
        self.session_id = session_id


class SessionEndedError(StorageError):
    """The session is closed (`ended_at` set); a retry must start a new session."""

    def __init__(self, session_id: uuid.UUID) -> None:
        super().__init__(
            f"session {session_id} has ended and cannot be changed; start a new session to retry"
        )
        self.session_id = session_id


class TurnNotFoundError(StorageError):
    """No message exists for (session, turn)."""

    def __init__(self, session_id: uuid.UUID, turn: int) -> None:
        super().__init__(f"session {session_id} has no turn {turn}")
        self.session_id = session_id
        self.turn = turn


class TurnNotAnsweredError(StorageError):
    """The turn exists but its answer has not arrived yet."""

    def __init__(self, session_id: uuid.UUID, turn: int) -> None:
        super().__init__(f"turn {turn} of session {session_id} has no answer yet")
        self.session_id = session_id
        self.turn = turn


class TurnConflictError(StorageError):
    """A different question or answer is already stored for this turn."""


class EvaluationTypeError(StorageError):
    """Wrong combination of evaluation type and turn (TURN_EVAL needs a turn, HOLISTIC none)."""


class InvalidTextError(StorageError, ValueError):
    """Text PostgreSQL cannot store (a NUL character or a lone surrogate); names the field."""


class InvalidDetailsError(StorageError):
    """`details` lacks a numeric `score` in [0, 100] or a string `analysis`, or is not JSON."""


class SessionIncompleteError(StorageError):
    """`close_session` was asked before every evaluation is stored."""


class InvalidEmotionError(StorageError, ValueError):
    """An emotion summary that breaks the seed 000 §4.2 rules; `field` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
