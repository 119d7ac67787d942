"""Throwaway databases on the embedded server, for the test suite and the benchmarks.

Each is created with a random name, migrated to head, and dropped on exit, so runs never see
each other's rows and nothing is left behind. With `settings.db_schema` (DB_SCHEMA) everything
lives in that schema, as it would on a shared production database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from storage.database import Database, DatabaseUrls, create_engine
from storage.embedded import drop_database, ensure_database, start_embedded_server
from storage.migrate import aupgrade
from storage.settings import StorageSettings


@asynccontextmanager
async def scratch_database(settings: StorageSettings, prefix: str) -> AsyncIterator[Database]:
    """A new, migrated database named `<prefix>_<random>`; disposed and dropped on exit."""
    server = await asyncio.to_thread(start_embedded_server, settings.data_dir)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await asyncio.to_thread(ensure_database, server, name)
    urls = DatabaseUrls.from_url(server.libpq_url(name), settings.db_schema)
    database = Database(create_engine(settings, urls), urls)
    try:
        await aupgrade(urls)
        yield database
    finally:
        await database.dispose()
        await asyncio.to_thread(drop_database, server, name)
