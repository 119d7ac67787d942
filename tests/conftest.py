"""Shared fixtures.

Integration tests run against the real embedded PostgreSQL (pgserver): one throwaway database
per test run, migrated with Alembic (`alembic upgrade head`), dropped at the end. Unit tests
need neither network nor database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from api.settings import Settings, get_settings
from graph.services import Services, build_services
from nodes.judges.settings import JudgeKind
from storage.bank import seed_questions
from storage.checkpoints import open_checkpointer
from storage.database import Database, DatabaseUrls
from storage.embedded import EmbeddedServer, start_embedded_server
from storage.embeddings import Embedder, load_embedder
from storage.evaluations import EvaluationStorageService
from storage.questions import QuestionRepository
from storage.scratch import scratch_database
from storage.services import Storage
from storage.sessions import SessionStore
from tests.support.http import app_client, tenant_settings

#: Shared fixtures of the LLM tests (`openai_stub`, `stub`): one stub server per module.
pytest_plugins = ["tests.support.stub_judge"]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def embedded_server(settings: Settings) -> EmbeddedServer:
    return start_embedded_server(settings.data_dir)


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    """A fresh, migrated database for this test run, dropped at the end."""
    async with scratch_database(settings, "turnjudge_test") as database:
        yield database


@pytest.fixture(scope="session")
def database_urls(db: Database) -> DatabaseUrls:
    return db.urls


@pytest.fixture(scope="session")
def embedder(settings: Settings) -> Embedder:
    return load_embedder(settings)


@pytest.fixture
def sessions(db: Database) -> SessionStore:
    return SessionStore(db)


@pytest.fixture
def evaluations(db: Database) -> EvaluationStorageService:
    return EvaluationStorageService(db)


@pytest.fixture
def questions(db: Database, embedder: Embedder) -> QuestionRepository:
    return QuestionRepository(db, embedder)


@pytest.fixture(scope="session")
async def storage(db: Database, embedder: Embedder) -> Storage:
    """All storage services on the test database, with the packaged question bank loaded."""
    bundle = Storage.from_database(db, embedder)
    await seed_questions(bundle.questions)
    return bundle


@pytest.fixture(scope="session")
def offline_settings() -> Settings:
    """Settings that select the offline heuristic judge whatever the environment says."""
    return Settings(judge=JudgeKind.HEURISTIC)


@pytest.fixture(scope="session")
async def offline_services(storage: Storage, offline_settings: Settings) -> Services:
    return await build_services(offline_settings, storage=storage)


@pytest.fixture(scope="session")
async def checkpointer(database_urls: DatabaseUrls) -> AsyncIterator[AsyncPostgresSaver]:
    async with open_checkpointer(database_urls.libpq) as saver:
        yield saver


@pytest.fixture(scope="module")
async def tenant_client(storage: Storage) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app under `tenant_settings` (keys of tenants acme, globex, default).

    One app per test module; no default headers: each request says which key it sends.
    """
    async with app_client(storage, tenant_settings()) as (_, client):
        yield client
