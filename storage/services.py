"""The storage services bundled together, opened from settings and closed once.

This is what the API lifespan, the CLI, notebooks and the graph's default runtime context
hold: one engine, and the services built on it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from storage.bank import seed_questions
from storage.database import Database
from storage.embeddings import Embedder, load_embedder
from storage.evaluations import EvaluationStorageService
from storage.migrate import aupgrade
from storage.questions import QuestionRepository
from storage.queue import JobQueue
from storage.sessions import SessionStore
from storage.settings import StorageSettings
from storage.turn_writes import TurnEvaluationWriter


@dataclass(frozen=True)
class Storage:
    """Database + the services that use it."""

    db: Database
    embedder: Embedder
    sessions: SessionStore
    evaluations: EvaluationStorageService
    questions: QuestionRepository
    jobs: JobQueue
    turn_writes: TurnEvaluationWriter
    """A submission's TURN_EVALs stored in one statement (see `storage.turn_writes`)."""

    @classmethod
    def from_database(
        cls, db: Database, embedder: Embedder, queue_name: str = "evaluations"
    ) -> Storage:
        """Build the services on an existing database handle."""
        evaluations = EvaluationStorageService(db)
        return cls(
            db=db,
            embedder=embedder,
            sessions=SessionStore(db),
            evaluations=evaluations,
            questions=QuestionRepository(db, embedder),
            jobs=JobQueue(db, queue_name),
            turn_writes=TurnEvaluationWriter(evaluations),
        )

    @classmethod
    async def open(
        cls, settings: StorageSettings, *, migrate: bool = True, seed: bool = False
    ) -> Storage:
        """Connect (starting the embedded server if needed), migrate, optionally seed the bank."""
        db = await Database.connect(settings)
        try:
            if migrate:
                await aupgrade(db.urls)
            embedder = await asyncio.to_thread(load_embedder, settings)
            storage = cls.from_database(db, embedder, settings.queue_name)
            await storage.questions.check_dimension()
            if seed and await storage.questions.count() == 0:
                await seed_questions(storage.questions)
        except BaseException:
            await db.dispose()
            raise
        return storage

    async def close(self) -> None:
        """Dispose of the engine's connections."""
        await self.db.dispose()
