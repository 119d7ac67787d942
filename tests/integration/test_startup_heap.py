"""`gc.freeze()` runs once start-up is done: services built, graph compiled, before serving."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from api import runtime as runtime_module
from api.settings import Settings
from graph import heap
from nodes.judges.settings import JudgeKind
from storage.services import Storage

pytestmark = pytest.mark.integration


async def test_the_runtime_freezes_the_heap_after_start_up(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    build_services = runtime_module.build_services
    build_graph = runtime_module.build_graph

    async def building(*args: Any, **kwargs: Any) -> Any:
        order.append("services")
        return await build_services(*args, **kwargs)

    def compiling(*args: Any, **kwargs: Any) -> Any:
        order.append("graph")
        return build_graph(*args, **kwargs)

    def freezing() -> int:
        order.append("freeze")
        return heap.freeze_startup_heap()

    monkeypatch.setattr(runtime_module, "build_services", building)
    monkeypatch.setattr(runtime_module, "build_graph", compiling)
    monkeypatch.setattr(runtime_module, "freeze_startup_heap", freezing)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    async with runtime_module.open_runtime(Settings(judge=JudgeKind.HEURISTIC), storage):
        assert order[-1] == "freeze" and order.count("freeze") == 1
        assert order.index("services") < order.index("graph") < order.index("freeze")
        # the embedding model loaded at start-up is among the frozen objects
        assert gc.get_freeze_count() > 10_000
    gc.unfreeze()


def test_freezing_collects_first_and_reports_the_count() -> None:
    gc.unfreeze()

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    gc.disable()  # no automatic pass may collect the cycle before the freeze does
    try:
        garbage = weakref.ref(Cycle())  # only a reference cycle keeps it alive
        assert garbage() is not None
        frozen = heap.freeze_startup_heap()
        assert garbage() is None  # collected, not frozen
        assert frozen == gc.get_freeze_count() > 0
    finally:
        gc.enable()
        gc.unfreeze()
