"""Node 7, close_session: set `ended_at`, only after every evaluation is stored.

If any evaluation failed, the session stays open (seed 002 §주의사항 4): the successful
evaluations remain stored, the failures are in the state, and `EvaluationIncompleteError` is
raised so the caller knows; re-running the submission for the session completes it.
An interview stopped before any answer is not a failure: it ends as `abandoned`.
"""

from __future__ import annotations

import uuid
from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.services import resolve_services
from graph.state import Failure, InterviewState


class EvaluationIncompleteError(RuntimeError):
    """Some evaluations failed; the session was left open so a re-run can complete it."""

    def __init__(self, session_id: str, failures: list[Failure]) -> None:
        described = "; ".join(
            f"{'turn ' + str(f['turn']) if f['target'] == 'turn' else 'holistic flow'}: "
            f"{f['error']}"
            for f in failures
        )
        super().__init__(
            f"session {session_id} left open, {len(failures)} evaluation(s) failed: {described}"
        )
        self.session_id = session_id
        self.failures = failures


async def close_session(state: InterviewState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Close the session, or raise `EvaluationIncompleteError` when evaluations failed.

    An interview stopped before its first answer has nothing to evaluate: it ends as
    `abandoned` (ended_at set, no evaluation stored).
    """
    assert state.session_id is not None
    if state.failures:
        raise EvaluationIncompleteError(state.session_id, state.failures)
    services = await resolve_services(runtime.context)
    session_id = uuid.UUID(state.session_id)
    if state.mode == "interview" and not state.answered_turns():
        ended_at = await services.storage.evaluations.abandon_session(session_id)
        return {"status": "abandoned", "ended_at": ended_at.isoformat()}
    ended_at = await services.storage.evaluations.close_session(session_id)
    return {"status": "completed", "ended_at": ended_at.isoformat()}
