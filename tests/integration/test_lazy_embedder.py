"""The embedding model is loaded on first use or in the background, never at `Storage.open`.

Real model (the packaged MiniLM) and the real embedded PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from api.runtime import open_runtime
from api.settings import Settings
from storage.database import Database
from storage.embeddings import EmbeddingDimensionError, LazyEmbedder
from storage.services import Storage

pytestmark = pytest.mark.integration


async def test_opening_the_storage_loads_no_model(settings: Settings, db: Database) -> None:
    test_db = settings.model_copy(update={"database_url": db.urls.libpq})
    storage = await Storage.open(test_db, migrate=True, seed=False)
    try:
        assert isinstance(storage.embedder, LazyEmbedder)
        assert not storage.embedder.loaded  # migrated, dimension checked, nothing loaded
        assert storage.embedder.dim == settings.embedding_dim
    finally:
        await storage.close()


def test_the_first_use_loads_the_model_once(settings: Settings) -> None:
    embedder = LazyEmbedder(settings)
    assert not embedder.loaded
    (vector,) = embedder.embed_queries(["How would you shard a table?"])
    assert embedder.loaded and len(vector) == settings.embedding_dim
    assert embedder.load() is embedder.load()


def test_preload_loads_in_a_thread_then_calls_back(settings: Settings) -> None:
    embedder = LazyEmbedder(settings)
    called = threading.Event()
    thread = embedder.preload(then=called.set)
    assert thread.daemon
    thread.join(timeout=300)
    assert embedder.loaded and called.is_set()


def test_a_wrong_dimension_is_refused_at_every_use(settings: Settings) -> None:
    embedder = LazyEmbedder(settings.model_copy(update={"embedding_dim": 768}))
    assert embedder.dim == 768  # nothing loaded yet: the configured dimension
    for _ in range(2):
        with pytest.raises(EmbeddingDimensionError, match="EMBEDDING_DIM=384"):
            embedder.embed_documents(["text"])
    assert not embedder.loaded


async def test_a_runtime_is_ready_before_the_model_and_loads_it_in_the_background(
    settings: Settings, db: Database
) -> None:
    test_db = settings.model_copy(update={"database_url": db.urls.libpq})
    async with open_runtime(test_db) as runtime:
        embedder = runtime.services.storage.embedder
        assert isinstance(embedder, LazyEmbedder)
        for _ in range(3000):  # nobody embeds: the preload thread loads it
            if embedder.loaded:
                break
            await asyncio.sleep(0.1)
        assert embedder.loaded
