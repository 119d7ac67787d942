"""Every route's dependencies run inline on the event loop, never in FastAPI's thread pool.

FastAPI runs a plain `def` dependency in a worker thread: a thread wake-up and a GIL
hand-off per dependency per request (about 1.2 ms of CPU per POST /submissions, measured
with py-spy, issue 9). The app's own dependencies are `async def`; this keeps it so.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.pages import pages_router
from api.routes import health_router, interview_router, router

#: Every router `api.app.create_app` includes.
ROUTERS = (health_router, router, pages_router, interview_router)


def _calls(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _inline(call: object) -> bool:
    """Whether FastAPI awaits `call` on the loop: a coroutine function or async `__call__`."""
    if inspect.iscoroutinefunction(call):
        return True
    return inspect.iscoroutinefunction(type(call).__call__)  # e.g. APIKeyHeader


def test_no_route_dependency_runs_in_a_worker_thread() -> None:
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    assert any(route.path == "/submissions" for route in routes)
    threaded = sorted(
        {
            f"{route.path}: {getattr(call, '__qualname__', repr(call))}"
            for route in routes
            for call in _calls(route.dependant)
            if not _inline(call)
        }
    )
    assert threaded == []


def test_the_check_sees_a_sync_dependency() -> None:
    """The helper is not vacuous: a plain `def` dependency is reported."""

    def sync_dependency() -> None:
        return None

    async def async_dependency() -> None:
        return None

    assert not _inline(sync_dependency)
    assert _inline(async_dependency)
