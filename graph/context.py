"""The graph's runtime context: the services nodes use, passed with `context=`.

Nodes never open engines; they get the judge, the question generator and the storage services
from here. When a run has no context (LangGraph Studio / `langgraph dev` supply none) the
defaults are built once per process from settings: storage on DATABASE_URL or the embedded
PostgreSQL (migrated, bank seeded), and the judge chosen by JUDGE.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from graph.heap import freeze_startup_heap
from nodes.judges.factory import make_judge, make_question_generator
from nodes.judges.judge import Judge
from nodes.question_generation import QuestionGenerator
from storage.services import Storage
from storage.settings import Settings, get_settings


@dataclass(frozen=True)
class Context:
    """Dependencies of one run. Unset fields fall back to the settings-built defaults."""

    storage: Storage | None = None
    """Sessions, evaluations and the question bank."""
    judge: Judge | None = None
    """Evaluates turns (node 4) and the whole flow (node 6a)."""
    question_generator: QuestionGenerator | None = None
    """Picks or writes the next question (node 2)."""


@dataclass(frozen=True)
class Services:
    """A context with every field resolved."""

    storage: Storage
    judge: Judge
    question_generator: QuestionGenerator


async def build_services(settings: Settings, storage: Storage | None = None) -> Services:
    """Services from settings: storage (opened, migrated, seeded), judge, question generator."""
    if storage is None:
        storage = await Storage.open(settings, migrate=True, seed=True)
    return Services(
        storage=storage,
        judge=make_judge(settings, storage.embedder),
        question_generator=make_question_generator(settings, storage),
    )


_defaults: dict[asyncio.AbstractEventLoop, Services] = {}
_derived: dict[int, Services] = {}
_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}


async def default_services() -> Services:
    """The process-wide defaults (one per event loop: asyncpg pools are loop-bound)."""
    loop = asyncio.get_running_loop()
    async with _locks.setdefault(loop, asyncio.Lock()):
        if loop not in _defaults:
            _defaults[loop] = await build_services(get_settings())
            freeze_startup_heap()
        return _defaults[loop]


async def resolve_services(context: Context | None) -> Services:
    """Fill the context's unset fields.

    Without storage everything comes from the process defaults; with storage but no judge or
    generator, those are built from settings on that storage once and reused (so the LLM
    judge's concurrency bound is shared by every run).
    """
    if context is not None and context.storage and context.judge and context.question_generator:
        return Services(context.storage, context.judge, context.question_generator)
    if context is None or context.storage is None:
        base = await default_services()
    else:
        key = id(context.storage)
        if key not in _derived:
            _derived[key] = await build_services(get_settings(), storage=context.storage)
        base = _derived[key]
    if context is None:
        return base
    return Services(
        storage=context.storage or base.storage,
        judge=context.judge or base.judge,
        question_generator=context.question_generator or base.question_generator,
    )
