"""The HTTP app `langgraph dev` (and LangGraph Studio) serve beside the graph.

`langgraph.json` names it under `http.app`; LangGraph's server merges its lifespan with its own
(https://docs.langchain.com/langsmith/custom-lifespan). On start-up the lifespan builds the
default services for the default configuration (database reached and migrated, question bank
seeded, embedding model loaded, judge chosen from the settings), so the first run asks its
first question at once instead of paying that cost; on shutdown it closes what was built
(LLM clients, database pool). A start-up failure (database unreachable, JUDGE=llm without an
endpoint) stops the server with that error rather than failing every run later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from graph.context import Context
from graph.services import aclose_default_services, default_provider

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    """Build the default services before serving; close them on shutdown."""
    started = time.perf_counter()
    await default_provider().get(Context())
    logger.info("turnjudge services ready in %.1f s", time.perf_counter() - started)
    try:
        yield
    finally:
        await aclose_default_services()


app = Starlette(lifespan=lifespan)
