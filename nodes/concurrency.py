"""Run coroutines together, all or none: the first failure cancels the rest and is raised.

Node 4 judges a submission's turns together, and the LLM judge asks its jurors and debaters
together; both need the same rule. `asyncio.gather` alone leaves the siblings of a failed
coroutine running. A `TaskGroup` cancels them, but raises an `ExceptionGroup`, which the
callers (and theirs: the graph, the API's error mapping) do not expect, so the failure
itself is raised: its own cause kept, the group as its context.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


async def all_or_none(coroutines: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Every coroutine's result, in order, run concurrently.

    On a failure the others are cancelled (and awaited), and the error of the first
    coroutine, in the given order, that failed is raised as it is.
    """
    tasks: list[asyncio.Task[T]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks.extend(group.create_task(coroutine) for coroutine in coroutines)
    except ExceptionGroup:
        error = next(
            e
            for task in tasks
            if task.done() and not task.cancelled() and (e := task.exception()) is not None
        )
        raise error  # noqa: B904 (its own __cause__ stays; the group is its __context__)
    return [task.result() for task in tasks]
