"""The TURN_EVALs of one submission stored together: one bulk upsert instead of one per turn.

A submission fans its turns out in parallel (one graph task per turn), and each task used to
open a transaction for its own row: 1.4 ms of Python and a database round trip per turn.
Here the submission announces its turns (`expect`), every task hands in its result (`save`)
or its failure (`skip`), and the task that hands in the last announced turn stores them all
with `EvaluationStorageService.save_turn_evaluations` — one statement — before it returns,
so before the graph's next step (close_session) runs. The other tasks return at once: none
waits for a sibling, so a run limited to fewer parallel tasks than turns cannot deadlock.

"The successful ones stay stored when one fails" holds both ways: a turn whose judge failed
is skipped and its siblings are stored; if the bulk statement itself is refused (all or
nothing: say one item is invalid), the rows are stored one by one, so the good rows are
stored and the first refusal is raised. A cancelled run (`abandon`) stores nothing more; a
killed process loses the rows not yet stored, and the re-submission judges those turns.
A turn nobody announced (interview mode, a run continued from a checkpoint) is saved at
once, as before.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from storage.evaluations import EvaluationStorageService, TurnEvaluationInput

logger = logging.getLogger(__name__)


class _Batch:
    """The announced turns of one submission run and the results handed in so far."""

    def __init__(self, turns: Iterable[int]) -> None:
        self.waiting = set(turns)
        self.items: dict[int, Mapping[str, Any]] = {}


class TurnEvaluationWriter:
    """Coalesces the TURN_EVAL upserts of each announced submission run."""

    def __init__(self, evaluations: EvaluationStorageService) -> None:
        """Write through `evaluations` (its bulk upsert and its single-row upsert)."""
        self._evaluations = evaluations
        self._batches: dict[uuid.UUID, _Batch] = {}

    def expect(self, session_id: uuid.UUID, turns: Iterable[int]) -> None:
        """Announce the turns a submission run is about to evaluate (replaces any earlier)."""
        turns = list(turns)
        if turns:
            self._batches[session_id] = _Batch(turns)
        else:
            self._batches.pop(session_id, None)

    def abandon(self, session_id: uuid.UUID) -> None:
        """The run is being torn down (cancelled): store nothing more of its batch."""
        self._batches.pop(session_id, None)

    async def save(self, session_id: uuid.UUID, turn: int, details: Mapping[str, Any]) -> None:
        """Store the turn's details now, or with its siblings when the turn was announced.

        An announced turn that is not the last one in returns at once: its row is stored by
        the task that hands in the last turn of the run, before that task returns (so before
        the graph's next step, close_session). Raises the storage's typed error when a row
        is refused, after every good row is stored.
        """
        batch = self._batches.get(session_id)
        if batch is None or turn not in batch.waiting:
            await self._evaluations.save_turn_evaluation(session_id, turn, details)
            return
        batch.items[turn] = details
        await self._resolve(session_id, batch, turn)

    async def skip(self, session_id: uuid.UUID, turn: int) -> None:
        """The turn has no result (its judge failed): the others are stored without it."""
        batch = self._batches.get(session_id)
        if batch is not None and turn in batch.waiting:
            await self._resolve(session_id, batch, turn)

    async def _resolve(self, session_id: uuid.UUID, batch: _Batch, turn: int) -> None:
        batch.waiting.discard(turn)
        if batch.waiting:
            return
        if self._batches.get(session_id) is batch:
            del self._batches[session_id]
        if not batch.items:
            return
        items = [
            TurnEvaluationInput(session_id=session_id, turn=number, details=details)
            for number, details in sorted(batch.items.items())
        ]
        try:
            await self._evaluations.save_turn_evaluations(items)
            return
        except Exception as exc:  # all or nothing: store the good rows one by one
            logger.warning(
                "bulk TURN_EVAL upsert of session %s refused (%s); storing the %d rows one by one",
                session_id,
                exc,
                len(items),
            )
        errors: list[Exception] = []
        for item in items:
            try:
                await self._evaluations.save_turn_evaluation(
                    item.session_id, item.turn, item.details
                )
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
