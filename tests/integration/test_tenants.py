"""Tenants and candidate tokens, over HTTP against the real database; the tenant migration.

Key B must get exactly the 404 of an unknown session on every route for key A's sessions
(and change nothing); a candidate token reads and answers its own interview and nothing else.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy import text

from api.settings import Settings
from nodes.judges.settings import JudgeKind
from storage.database import DatabaseUrls
from storage.embedded import EmbeddedServer, drop_database, ensure_database
from storage.migrate import check, downgrade, upgrade
from storage.services import Storage
from tests.support.http import (
    ANSWER,
    HEADERS_A,
    HEADERS_B,
    KEY_DEFAULT,
    app_client,
    assert_error,
    table_counts,
)

pytestmark = pytest.mark.integration

START = {"participant_id": "p-tenant", "position": "backend", "max_turns": 3}
SUBMISSION = {
    "participant_id": "p-tenant",
    "position": "devops",
    "transcript": [{"question": "How do you roll out a risky change?", "answer": ANSWER}],
}


class TenantWorld:
    """Sessions of tenant A: two live interviews (with candidate tokens) and a closed one."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        live: dict[str, Any],
        other: dict[str, Any],
        closed: dict[str, Any],
    ) -> None:
        self.client = client
        self.live = live
        self.other = other
        self.closed = closed

    @property
    def live_id(self) -> str:
        return str(self.live["session_id"])

    @property
    def token(self) -> str:
        return str(self.live["candidate_token"])


@pytest.fixture(scope="module")
async def world(tenant_client: httpx.AsyncClient) -> TenantWorld:
    live = await tenant_client.post("/interviews", json=START, headers=HEADERS_A)
    other = await tenant_client.post("/interviews", json=START, headers=HEADERS_A)
    closed = await tenant_client.post("/submissions", json=SUBMISSION, headers=HEADERS_A)
    assert live.status_code == other.status_code == 201, live.text
    assert closed.status_code == 200, closed.text
    return TenantWorld(tenant_client, live.json(), other.json(), closed.json())


def _routes(session_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every route that names a session, with a request that would succeed for its owner."""
    return [
        ("GET", f"/interviews/{session_id}", {}),
        ("POST", f"/interviews/{session_id}/answers", {"json": {"answer": ANSWER}}),
        ("POST", f"/interviews/{session_id}/answers", {"json": {"stop": True}}),
        ("POST", f"/sessions/{session_id}/submit", {}),
        ("POST", f"/sessions/{session_id}/submit", {"params": {"reevaluate": "true"}}),
        ("GET", f"/sessions/{session_id}/report", {}),
        ("GET", f"/sessions/{session_id}/evaluations", {}),
        (
            "GET",
            f"/sessions/{session_id}/evaluations",
            {"params": {"evaluation_type": "TURN_EVAL"}},
        ),
        ("POST", "/submissions", {"json": {**SUBMISSION, "session_id": session_id}}),
    ]


@pytest.mark.parametrize(
    "headers", [HEADERS_B, {"X-API-Key": KEY_DEFAULT}], ids=["tenant-b", "tenant-default"]
)
async def test_another_tenant_gets_the_404_of_an_unknown_session_on_every_route(
    world: TenantWorld, storage: Storage, headers: dict[str, str]
) -> None:
    client = world.client
    for session_id in (world.live_id, str(world.closed["session_id"])):
        for method, path, kwargs in _routes(session_id):
            before = await table_counts(storage)
            response = await client.request(method, path, headers=headers, **kwargs)
            unknown_id = str(uuid.uuid4())
            unknown = await client.request(
                method,
                path.replace(session_id, unknown_id),
                headers=headers,
                **_swap(kwargs, session_id, unknown_id),
            )
            assert response.status_code == 404, (method, path, response.text)
            assert_error(response, 404)
            assert response.json() == {
                "error": "SessionNotFoundError",
                "detail": f"session {session_id} does not exist",
            }
            if path != "/submissions":  # a new session_id in a submission is a new session
                assert unknown.json() == {
                    "error": "SessionNotFoundError",
                    "detail": f"session {unknown_id} does not exist",
                }
            else:
                assert unknown.status_code == 200
                continue  # that request created a session (of tenant B): counts differ
            assert await table_counts(storage) == before, (method, path)

    # Tenant A's interview is untouched and still works for A.
    step = await client.get(f"/interviews/{world.live_id}", headers=HEADERS_A)
    assert step.status_code == 200 and step.json()["status"] == "awaiting_answer"
    assert step.json()["question"]["turn"] == 1
    report = await client.get(f"/sessions/{world.closed['session_id']}/report", headers=HEADERS_A)
    assert report.status_code == 200 and report.json()["ended_at"] is not None


def _swap(kwargs: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    body = kwargs.get("json")
    if isinstance(body, dict) and body.get("session_id") == old:
        return {**kwargs, "json": {**body, "session_id": new}}
    return kwargs


async def test_sessions_record_their_tenant(world: TenantWorld, storage: Storage) -> None:
    async with storage.db.engine.connect() as conn:
        rows = dict(
            (
                await conn.execute(
                    text("SELECT id::text, tenant FROM prompt_sessions WHERE id = ANY(:ids)"),
                    {"ids": [uuid.UUID(world.live_id), uuid.UUID(str(world.closed["session_id"]))]},
                )
            ).all()
        )
        token_hash = await conn.scalar(
            text("SELECT candidate_token_sha256 FROM prompt_sessions WHERE id = :id"),
            {"id": uuid.UUID(world.live_id)},
        )
    assert set(rows.values()) == {"acme"}
    # Only the SHA-256 of the candidate token is stored.
    assert token_hash == hashlib.sha256(world.token.encode()).hexdigest()
    assert world.token not in str(token_hash)


async def test_tenant_b_sessions_are_its_own(world: TenantWorld, storage: Storage) -> None:
    client = world.client
    mine = await client.post("/submissions", json=SUBMISSION, headers=HEADERS_B)
    assert mine.status_code == 200
    session_id = mine.json()["session_id"]
    assert (
        await client.get(f"/sessions/{session_id}/report", headers=HEADERS_B)
    ).status_code == 200
    assert (
        await client.get(f"/sessions/{session_id}/report", headers=HEADERS_A)
    ).status_code == 404
    async with storage.db.engine.connect() as conn:
        tenant = await conn.scalar(
            text("SELECT tenant FROM prompt_sessions WHERE id = :id"), {"id": uuid.UUID(session_id)}
        )
    assert tenant == "globex"


async def test_candidate_token_reads_and_answers_its_interview_only(
    world: TenantWorld, storage: Storage
) -> None:
    client = world.client
    token = {"X-Candidate-Token": world.token}
    step = await client.get(f"/interviews/{world.live_id}", headers=token)
    assert step.status_code == 200 and step.json()["question"]["turn"] == 1
    assert "candidate_token" not in step.json()  # shown once, at creation

    # Not another session, not even one of the same tenant.
    for session_id in (
        str(world.other["session_id"]),
        str(world.closed["session_id"]),
        str(uuid.uuid4()),
    ):
        before = await table_counts(storage)
        for method, path, kwargs in _routes(session_id):
            response = await client.request(method, path, headers=token, **kwargs)
            assert_error(response, 401)
        assert await table_counts(storage) == before

    # Not the platform's routes for its own session either.
    before = await table_counts(storage)
    for method, path, kwargs in _routes(world.live_id)[3:]:
        response = await client.request(method, path, headers=token, **kwargs)
        assert_error(response, 401)
        assert "X-API-Key" in response.json()["detail"]
    for method, path, kwargs in [
        ("POST", "/interviews", {"json": START}),
        ("GET", "/questions/similar", {"params": {"text": "indexes"}}),
    ]:
        assert_error(await client.request(method, path, headers=token, **kwargs), 401)
    assert await table_counts(storage) == before

    # A wrong key next to a valid token is refused: a key, when sent, must be valid.
    bad_key = {**token, "X-API-Key": "wrong-key-0123456789"}
    assert_error(await client.get(f"/interviews/{world.live_id}", headers=bad_key), 401)

    answered = await client.post(
        f"/interviews/{world.live_id}/answers", json={"answer": ANSWER}, headers=token
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["question"]["turn"] == 2
    assert answered.json()["last_evaluation"]["turn"] == 1


async def test_candidate_token_of_another_tenant_session_does_not_open_mine(
    world: TenantWorld,
) -> None:
    client = world.client
    theirs = await client.post("/interviews", json=START, headers=HEADERS_B)
    assert theirs.status_code == 201
    token = {"X-Candidate-Token": theirs.json()["candidate_token"]}
    assert_error(await client.get(f"/interviews/{world.live_id}", headers=token), 401)
    assert (
        await client.get(f"/interviews/{theirs.json()['session_id']}", headers=token)
    ).status_code == 200


async def test_without_api_keys_everything_is_tenant_default(
    storage: Storage, tenant_client: httpx.AsyncClient
) -> None:
    settings = Settings(_env_file=None, judge=JudgeKind.HEURISTIC)  # type: ignore[call-arg]
    async with app_client(storage, settings) as (_, client):
        started = await client.post("/interviews", json=START)
        assert started.status_code == 201
        session_id = started.json()["session_id"]
        async with storage.db.engine.connect() as conn:
            tenant = await conn.scalar(
                text("SELECT tenant FROM prompt_sessions WHERE id = :id"),
                {"id": uuid.UUID(session_id)},
            )
        assert tenant == "default"
    # The same session is the default tenant's when keys are turned on...
    bare = Settings(
        _env_file=None,
        judge=JudgeKind.HEURISTIC,  # type: ignore[call-arg]
        api_keys=[SecretStr(KEY_DEFAULT)],
    )
    async with app_client(storage, bare) as (_, client):
        assert (
            await client.get(f"/interviews/{session_id}", headers={"X-API-Key": KEY_DEFAULT})
        ).status_code == 200
    # ...and nobody else's.
    mine = await tenant_client.get(f"/interviews/{session_id}", headers=HEADERS_A)
    assert mine.status_code == 404


# --- the migration ------------------------------------------------------------------------


@pytest.fixture
def empty_database(embedded_server: EmbeddedServer) -> Iterator[DatabaseUrls]:
    name = f"turnjudge_tenant_{uuid.uuid4().hex[:12]}"
    ensure_database(embedded_server, name)
    try:
        yield DatabaseUrls(
            sqlalchemy=embedded_server.sqlalchemy_url(name), libpq=embedded_server.libpq_url(name)
        )
    finally:
        drop_database(embedded_server, name)


def _columns(urls: DatabaseUrls) -> set[str]:
    with psycopg.connect(urls.libpq, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'prompt_sessions'"
        ).fetchall()
    return {str(row[0]) for row in rows}


def test_tenant_migration_upgrades_existing_rows_and_downgrades(
    empty_database: DatabaseUrls,
) -> None:
    urls = empty_database
    upgrade(urls.sqlalchemy, "0001")
    assert "tenant" not in _columns(urls)
    with psycopg.connect(urls.libpq, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO prompt_sessions (participant_id, position, language, max_turns)"
            " VALUES ('p-old', 'backend', 'en', 3)"
        )
    upgrade(urls.sqlalchemy, "0002_session_tenant")
    assert {"tenant", "candidate_token_sha256"} <= _columns(urls)
    with psycopg.connect(urls.libpq, autocommit=True) as conn:
        assert conn.execute(
            "SELECT tenant, candidate_token_sha256 FROM prompt_sessions"
        ).fetchall() == [("default", None)]
        assert conn.execute(
            "SELECT 1 FROM pg_indexes WHERE indexname = 'ix_prompt_sessions_tenant'"
        ).fetchall() == [(1,)]
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("0002_session_tenant",)
        ]
    downgrade(urls.sqlalchemy, "0001")
    assert not {"tenant", "candidate_token_sha256"} & _columns(urls)
    with psycopg.connect(urls.libpq, autocommit=True) as conn:
        assert conn.execute("SELECT participant_id FROM prompt_sessions").fetchall() == [("p-old",)]
    upgrade(urls.sqlalchemy)
    check(urls.sqlalchemy)
