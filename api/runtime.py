"""Everything a facade process needs, opened and closed together.

The API lifespan, the CLI and the notebooks all use `open_runtime`: storage (migrated, bank
seeded), the judge and question generator from settings, the PostgreSQL checkpointer, and the
compiled graph behind an `InterviewService`; then the start-up heap is frozen out of the GC's
scans (`graph.heap`). The embedding model loads in the background meanwhile (and the heap
is frozen again once it is in).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from api.interviews import InterviewService
from api.settings import Settings
from graph.graph import build_graph
from graph.heap import freeze_startup_heap
from graph.services import Services, build_services
from graph.state import InterviewState
from storage.checkpoints import open_checkpointer
from storage.embeddings import LazyEmbedder
from storage.services import Storage

#: Our types stored in checkpoints (the state travels inside `Send` packets); the TypedDicts
#: of the state are plain dicts at run time and need no entry.
CHECKPOINT_TYPES: tuple[type, ...] = (InterviewState,)


@dataclass(frozen=True)
class AppRuntime:
    """Settings, services and the interview facade of one process."""

    settings: Settings
    services: Services
    interviews: InterviewService


@asynccontextmanager
async def open_runtime(
    settings: Settings, storage: Storage | None = None
) -> AsyncIterator[AppRuntime]:
    """Open (or adopt) storage, build services and the checkpointed graph; close on exit.

    An injected `storage` is left open for its owner to close.
    """
    opened = storage or await Storage.open(settings, migrate=True, seed=True)
    _preload_embedder(opened)
    try:
        services = await build_services(settings, storage=opened)
        try:
            async with open_checkpointer(
                opened.db.urls.libpq, allowed_types=CHECKPOINT_TYPES
            ) as checkpointer:
                interviews = InterviewService(build_graph(checkpointer), services)
                freeze_startup_heap()  # start-up is done: its objects leave the GC's scans
                yield AppRuntime(settings, services, interviews)
        finally:
            await services.aclose_clients()
    finally:
        if storage is None:
            await opened.close()


def _preload_embedder(storage: Storage) -> None:
    """Start loading the embedding model in the background, if it is not loaded yet.

    The process is ready (the API answers /health) without waiting for torch and the model,
    seconds of start-up; the first request that embeds (the judge's guards, similar-question
    search) waits for the load. Once loaded, the heap is frozen again so that the model's
    objects leave the GC's scans too (`graph.heap`). The thread is a daemon: a process
    stopped while the model loads exits at once instead of waiting for the load.
    """
    embedder = storage.embedder
    if isinstance(embedder, LazyEmbedder) and not embedder.loaded:
        embedder.preload(then=freeze_startup_heap)
