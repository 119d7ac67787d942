"""The live services of a run, resolved from its configuration (`Context`).

Nodes get their services with one accessor, `await resolve_services(runtime.context)`:

- When a caller has bound already-built services with `use_services(services)` (the interview
  facade, tests, benchmarks), those are used, whatever the context says: the caller built
  them from its own configuration and owns their lifetime.
- Otherwise (LangGraph Studio, `langgraph dev`, `graph.ainvoke` from a notebook) the
  process-wide `ServiceProvider` builds them from the settings with the context's values
  applied: the storage once (opened, migrated, bank seeded), a judge and a question
  generator once per distinct configuration, so a run never pays the start-up cost twice and
  runs with one configuration share one LLM concurrency bound. `aclose_default_services()`
  closes them (the Studio app's lifespan calls it on shutdown).

Providers are per event loop: asyncpg pools cannot cross loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from graph.context import Context
from graph.heap import freeze_startup_heap
from graph.settings import GraphSettings
from nodes.judges.factory import make_judge, make_question_generator
from nodes.judges.judge import Judge
from nodes.question_generation import QuestionGenerator
from storage.services import Storage


@dataclass(frozen=True)
class Services:
    """What the nodes use: sessions/evaluations/bank, the judge, the question generator."""

    storage: Storage
    judge: Judge
    question_generator: QuestionGenerator

    async def aclose_clients(self) -> None:
        """Close the HTTP clients of the judge and the generator (the storage is not touched)."""
        for owner in (self.judge, self.question_generator):
            close = getattr(owner, "aclose", None)  # the LLM paths hold an HTTP client
            if close is not None:
                await close()


async def build_services(settings: GraphSettings, storage: Storage | None = None) -> Services:
    """Services from settings: storage (opened, migrated, seeded unless given), judge, generator."""
    if storage is None:
        storage = await Storage.open(settings, migrate=True, seed=True)
    return Services(
        storage=storage,
        judge=make_judge(settings, storage.embedder, settings.embedding_model_name),
        question_generator=make_question_generator(settings, storage),
    )


class ServiceProvider:
    """Builds services for each distinct configuration on one storage, and closes them."""

    def __init__(self, settings: GraphSettings) -> None:
        """`settings` are the base every context's values are applied to."""
        self._settings = settings
        self._storage: Storage | None = None
        self._built: dict[tuple[tuple[str, object], ...], Services] = {}
        self._lock = asyncio.Lock()

    async def get(self, context: Context) -> Services:
        """The services of `context` (built on first use, then reused)."""
        settings = context.apply(self._settings)
        key = tuple(sorted(context.overrides().items()))
        async with self._lock:
            if key not in self._built:
                if self._storage is None:
                    self._storage = await Storage.open(self._settings, migrate=True, seed=True)
                self._built[key] = await build_services(settings, storage=self._storage)
                freeze_startup_heap()  # services are long-lived: out of the GC's scans
            return self._built[key]

    async def aclose(self) -> None:
        """Close every judge and generator built, then the storage."""
        async with self._lock:
            for services in self._built.values():
                await services.aclose_clients()
            self._built.clear()
            if self._storage is not None:
                await self._storage.close()
                self._storage = None


_bound: ContextVar[Services | None] = ContextVar("turnjudge_services", default=None)
_providers: dict[asyncio.AbstractEventLoop, ServiceProvider] = {}


@contextmanager
def use_services(services: Services) -> Iterator[Services]:
    """Run the graph with these already-built services (graph runs started inside the block)."""
    token = _bound.set(services)
    try:
        yield services
    finally:
        _bound.reset(token)


def default_provider() -> ServiceProvider:
    """The process-wide provider of the running event loop (settings read on first use)."""
    loop = asyncio.get_running_loop()
    if loop not in _providers:
        _providers[loop] = ServiceProvider(GraphSettings())
    return _providers[loop]


async def aclose_default_services() -> None:
    """Close what the running loop's default provider built (a no-op if it built nothing)."""
    provider = _providers.pop(asyncio.get_running_loop(), None)
    if provider is not None:
        await provider.aclose()


async def resolve_services(context: Context | None) -> Services:
    """The services of a run: the bound ones, else the default provider's for `context`."""
    bound = _bound.get()
    if bound is not None:
        return bound
    return await default_provider().get(context or Context())
