"""The storage services bundled together, opened from settings and closed once.

This is what the API lifespan, the CLI, notebooks and the graph's default runtime context
hold: one engine, and the services built on it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from storage.bank import seed_questions
from storage.database import Database
from storage.embeddings import Embedder, LazyEmbedder
from storage.evaluations import EvaluationStorageService, evaluations_of
from storage.migrate import aupgrade
from storage.questions import QuestionRepository
from storage.queue import JobQueue
from storage.sessions import SessionStore, session_of, transcript_of
from storage.settings import StorageSettings
from storage.views import SessionRecord


@dataclass(frozen=True)
class Storage:
    """Database + the services that use it."""

    db: Database
    embedder: Embedder
    sessions: SessionStore
    evaluations: EvaluationStorageService
    questions: QuestionRepository
    jobs: JobQueue

    @classmethod
    def from_database(
        cls, db: Database, embedder: Embedder, queue_name: str = "evaluations"
    ) -> Storage:
        """Build the services on an existing database handle."""
        return cls(
            db=db,
            embedder=embedder,
            sessions=SessionStore(db),
            evaluations=EvaluationStorageService(db),
            questions=QuestionRepository(db, embedder),
            jobs=JobQueue(db, queue_name),
        )

    @classmethod
    async def open(
        cls,
        settings: StorageSettings,
        *,
        migrate: bool = True,
        seed: bool = False,
    ) -> Storage:
        """Connect (starting the embedded server if needed), migrate, optionally seed the bank.

        The embedding model is not loaded here (`LazyEmbedder`): on first use, or in the
        background once the caller asks (`LazyEmbedder.preload`). Seeding an empty bank
        loads it.
        """
        db = await Database.connect(settings)
        try:
            if migrate:
                await aupgrade(db.urls)
            embedder = LazyEmbedder(settings)
            storage = cls.from_database(db, embedder, settings.queue_name)
            await storage.questions.check_dimension()
            if seed and await storage.questions.count() == 0:
                await seed_questions(storage.questions)
        except BaseException:
            await db.dispose()
            raise
        return storage

    async def session_record(
        self, session_id: uuid.UUID, *, tenant: str | None = None
    ) -> SessionRecord:
        """The session, its turns and its evaluations in one transaction (three statements).

        `SessionNotFoundError` when it does not exist or, with `tenant`, is another tenant's.
        """
        async with self.db.connection() as c:
            session = await session_of(c, session_id, tenant=tenant)
            turns = await transcript_of(c, session_id)
            evaluations = await evaluations_of(c, session_id)
        return SessionRecord(session, turns, evaluations)

    async def close(self) -> None:
        """Dispose of the engine's connections."""
        await self.db.dispose()
