"""One run's TURN_EVALs stored together: one bulk upsert, and the good rows kept when refused.

Node 4 judges the turns of a submission at once and hands their details in together, so they
are stored with `EvaluationStorageService.save_turn_evaluations`: one statement instead of a
transaction per turn (1.4 ms of Python and a database round trip each).

"The successful ones stay stored when one fails" holds both ways: a turn whose judge failed
has no details here and its siblings are stored; if the bulk statement itself is refused (all
or nothing: say one item is invalid), the rows are stored one by one, so the good rows are
stored and the first refusal is raised.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from storage.evaluations import EvaluationStorageService, TurnEvaluationInput

logger = logging.getLogger(__name__)


async def save_turn_results(
    evaluations: EvaluationStorageService,
    session_id: uuid.UUID,
    results: Mapping[int, Mapping[str, Any]],
) -> None:
    """Upsert the TURN_EVAL details of the session's turns (turn -> details) together.

    Raises the storage's typed error when a row is refused, after every good row is stored.
    """
    items = [
        TurnEvaluationInput(session_id=session_id, turn=turn, details=details)
        for turn, details in sorted(results.items())
    ]
    try:
        await evaluations.save_turn_evaluations(items)
        return
    except Exception as exc:
        if len(items) == 1:
            raise
        logger.warning(
            "bulk TURN_EVAL upsert of session %s refused (%s); storing the %d rows one by one",
            session_id,
            exc,
            len(items),
        )
    errors: list[Exception] = []
    for item in items:
        try:
            await evaluations.save_turn_evaluation(item.session_id, item.turn, item.details)
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
