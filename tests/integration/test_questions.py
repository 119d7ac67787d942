"""QuestionRepository on the real database: pgvector search, filters, batching, seeding.

Known-vector tests insert hand-made unit vectors (an orthonormal frame drawn at random per
test, so rows of other tests can never be near them) and check the exact neighbours, their
order and their cosine distances. Each test uses its own position string so rows of other
tests (and the seeded bank) do not disturb exact expectations.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest
from sqlalchemy import insert, select, text, update

from api.settings import Settings
from storage.bank import load_bank, seed_questions
from storage.database import Database
from storage.embeddings import Embedder, EmbeddingDimensionError
from storage.models import Question
from storage.questions import NewQuestion, QuestionRepository
from storage.scratch import scratch_database

pytestmark = pytest.mark.integration


def unique_position() -> str:
    return f"pos-{uuid.uuid4().hex[:8]}"


def frame(dim: int, count: int) -> np.ndarray:
    """`count` random orthonormal vectors of dimension `dim` (rows)."""
    rng = np.random.default_rng()
    basis, _ = np.linalg.qr(rng.normal(size=(dim, count)))
    return basis.T


def known_rows(dim: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A frame and six unit vectors whose cosine distances to frame[0] are known exactly."""
    b = frame(dim, 6)
    vectors = {
        "exact": b[0],  # distance 0
        "near": 0.9 * b[0] + math.sqrt(1 - 0.81) * b[1],  # 0.1
        "mid": 0.5 * b[0] + math.sqrt(0.75) * b[2],  # 0.5
        "orth": b[3],  # 1.0
        "far": -0.6 * b[0] + 0.8 * b[4],  # 1.6
        "opposite": -b[0],  # 2.0
    }
    return b, vectors


LANGUAGE = {"near": "ko", "far": "ko"}  # the others are "en"


async def insert_vectors(
    db: Database, position: str, vectors: dict[str, np.ndarray]
) -> dict[str, int]:
    """Insert rows with the given embeddings directly (no embedder); return name -> id."""
    rows = [
        {
            "position": position,
            "category": "known",
            "language": LANGUAGE.get(name, "en"),
            "text": name,
            "embedding": vector.tolist(),
        }
        for name, vector in vectors.items()
    ]
    async with db.transaction() as s:
        statement = insert(Question).values(rows).returning(Question.id, Question.text)
        result = await s.execute(statement)
        return {row.text: row.id for row in result}


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ---------------------------------------------------------------------- known vectors


async def test_exact_neighbours_order_and_distances(
    db: Database, questions: QuestionRepository, settings: Settings
) -> None:
    position = unique_position()
    b, vectors = known_rows(settings.embedding_dim)
    ids = await insert_vectors(db, position, vectors)

    found = await questions.similar(b[0].tolist(), k=6, position=position)
    assert [q.text for q in found] == ["exact", "near", "mid", "orth", "far", "opposite"]
    assert [q.distance for q in found] == pytest.approx([0.0, 0.1, 0.5, 1.0, 1.6, 2.0], abs=1e-5)
    assert [q.id for q in found] == [ids[q.text] for q in found]
    assert {(q.position, q.category) for q in found} == {(position, "known")}
    assert [q.language for q in found] == ["en", "ko", "en", "en", "ko", "en"]

    # Cosine distance ignores the query's length.
    scaled = await questions.similar((3.7 * b[0]).tolist(), k=6, position=position)
    assert [q.distance for q in scaled] == pytest.approx([q.distance for q in found], abs=1e-5)

    # Another query direction gives another order: sorted by distance, not by insertion.
    query = 0.6 * b[0] + 0.8 * b[3]
    found = await questions.similar(query.tolist(), k=6, position=position)
    expected = sorted(vectors, key=lambda name: cosine_distance(query, vectors[name]))
    assert expected == ["orth", "exact", "near", "mid", "far", "opposite"]
    assert [q.text for q in found] == expected
    assert [q.distance for q in found] == pytest.approx(
        [cosine_distance(query, vectors[name]) for name in expected], abs=1e-5
    )


@pytest.mark.parametrize("k", [1, 3, 6, 50])
async def test_k_is_respected(
    db: Database, questions: QuestionRepository, settings: Settings, k: int
) -> None:
    position = unique_position()
    b, vectors = known_rows(settings.embedding_dim)
    await insert_vectors(db, position, vectors)
    found = await questions.similar(b[0].tolist(), k=k, position=position)
    order = ["exact", "near", "mid", "orth", "far", "opposite"]
    assert [q.text for q in found] == order[: min(k, len(order))]


async def test_position_language_and_exclude_filters(
    db: Database, questions: QuestionRepository, settings: Settings
) -> None:
    position, other = unique_position(), unique_position()
    b, vectors = known_rows(settings.embedding_dim)
    ids = await insert_vectors(db, position, vectors)
    # The other position holds vectors nearer to the query than every row but "exact".
    decoys = {
        f"decoy{i}": 0.999 * b[0] + math.sqrt(1 - 0.999**2) * b[5 - (i % 2)] * (1 if i < 2 else -1)
        for i in range(4)
    }
    decoy_ids = await insert_vectors(db, other, decoys)

    unfiltered = await questions.similar(b[0].tolist(), k=5)
    assert {q.id for q in unfiltered} == {ids["exact"], *decoy_ids.values()}

    mine = await questions.similar(b[0].tolist(), k=6, position=position)
    assert [q.text for q in mine] == ["exact", "near", "mid", "orth", "far", "opposite"]
    theirs = await questions.similar(b[0].tolist(), k=6, position=other)
    assert {q.id for q in theirs} == set(decoy_ids.values())
    assert {q.position for q in theirs} == {other}

    korean = await questions.similar(b[0].tolist(), k=6, position=position, language="ko")
    assert [q.text for q in korean] == ["near", "far"]

    excluded = await questions.similar(
        b[0].tolist(), k=6, position=position, exclude_ids=[ids["exact"], ids["near"]]
    )
    assert [q.text for q in excluded] == ["mid", "orth", "far", "opposite"]
    two = await questions.similar(
        b[0].tolist(), k=2, position=position, exclude_ids=iter([ids["exact"], ids["mid"]])
    )
    assert [q.text for q in two] == ["near", "orth"]


async def test_filtered_search_is_not_starved_by_nearer_rows_elsewhere(
    db: Database, questions: QuestionRepository, settings: Settings
) -> None:
    """150 rows of another position are all nearer than our 6: the filter must still find k.

    A position this small is answered exactly (the planner uses the position index); the
    common-position case below is where HNSW post-filtering starves the result.
    """
    position, crowd = unique_position(), unique_position()
    b, vectors = known_rows(settings.embedding_dim)
    await insert_vectors(db, position, vectors)
    rng = np.random.default_rng()
    crowded = {}
    for i in range(150):
        noise = rng.normal(size=settings.embedding_dim)
        noise -= (noise @ b[0]) * b[0]
        crowded[f"crowd{i}"] = 0.99 * b[0] + math.sqrt(1 - 0.99**2) * noise / np.linalg.norm(noise)
    await insert_vectors(db, crowd, crowded)
    found = await questions.similar(b[0].tolist(), k=6, position=position, ef_search=40)
    assert [q.text for q in found] == ["exact", "near", "mid", "orth", "far", "opposite"]


async def test_filtered_search_returns_k_rows_for_a_common_position(
    empty_bank_db: Database, settings: Settings
) -> None:
    """10 positions x 200 rows; the rows of `target` are all farther from the query."""
    dim = settings.embedding_dim
    rng = np.random.default_rng(7)
    axis = frame(dim, 1)[0]

    def around(cosine: float, count: int) -> np.ndarray:
        noise = rng.normal(size=(count, dim))
        noise -= np.outer(noise @ axis, axis)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        return cosine * axis + math.sqrt(1 - cosine**2) * noise

    rows = []
    for position, cosine in [(f"p{i}", 0.9) for i in range(9)] + [("target", 0.5)]:
        rows += [
            {
                "position": position,
                "category": "c",
                "language": "en",
                "text": f"{position}-{i}",
                "embedding": vector.tolist(),
            }
            for i, vector in enumerate(around(cosine, 200))
        ]
    async with empty_bank_db.transaction() as s:
        await s.execute(insert(Question), rows)
    async with empty_bank_db.engine.begin() as conn:  # committed: planner statistics
        await conn.execute(text("ANALYZE questions"))
    repository = QuestionRepository(empty_bank_db, HashEmbedder(dim))
    found = await repository.similar(axis.tolist(), k=10, position="target", ef_search=40)
    assert [q.position for q in found] == ["target"] * 10


async def test_bad_queries_are_refused(questions: QuestionRepository, settings: Settings) -> None:
    dim = settings.embedding_dim
    for wrong in (dim - 1, dim + 1, 3):
        with pytest.raises(ValueError, match=f"query vector has {wrong} dimensions"):
            await questions.similar([0.1] * wrong, k=3)
    with pytest.raises(ValueError, match="k must be >= 1"):
        await questions.similar([0.1] * dim, k=0)


# ---------------------------------------------------------------- add_many and batching


class CountingEmbedder:
    """Wraps the real embedder and records the size of every batch it is asked for."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.document_batches: list[int] = []
        self.query_batches: list[int] = []

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.document_batches.append(len(texts))
        return self.inner.embed_documents(texts)

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        self.query_batches.append(len(texts))
        return self.inner.embed_queries(texts)


TOPICS = [
    "How do B-tree indexes speed up range queries?",
    "What is a race condition and how do you prevent one?",
    "Explain eventual consistency with an example.",
    "How would you rate-limit a public API?",
    "What happens during a TLS handshake?",
    "How do you roll back a failed deployment safely?",
    "트랜잭션 격리 수준을 설명해 주세요.",
    "캐시 무효화 전략에는 어떤 것이 있나요?",
    "What is backpressure in a streaming system?",
    "How do you find a memory leak in a long-running service?",
]


async def test_add_many_is_idempotent_and_embeds_in_batches(
    db: Database, embedder: Embedder
) -> None:
    position = unique_position()
    counting = CountingEmbedder(embedder)
    repository = QuestionRepository(db, counting, batch_size=4)
    new = [
        NewQuestion(
            position=position, category="mixed", language="ko" if "요" in t else "en", text=t
        )
        for t in TOPICS
    ]
    duplicate = NewQuestion(position=position, category="other", language="en", text=TOPICS[0])

    assert await repository.add_many([*new, duplicate]) == 10
    assert counting.document_batches == [4, 4, 2]
    assert await repository.count(position) == 10
    assert position in await repository.positions()

    assert await repository.add_many(new) == 0  # second call inserts nothing
    assert await repository.count(position) == 10

    extra = NewQuestion(position=position, category="mixed", language="en", text="What is a CRDT?")
    assert await repository.add_many([new[3], extra, new[5]]) == 1
    assert await repository.count(position) == 11
    extra_id = await repository.add(extra)  # existing question: its id, no new row
    assert await repository.count(position) == 11

    # The stored embedding is the model's embedding of the text.
    (hit,) = await repository.similar("What is a CRDT?", k=1, position=position)
    assert (hit.id, hit.text) == (extra_id, "What is a CRDT?")
    assert hit.distance == pytest.approx(0.0, abs=1e-5)
    assert counting.query_batches == [1]

    first = await repository.first_question(position)
    assert first.text == TOPICS[0]
    assert (await repository.first_question(position, language="ko")).text == TOPICS[6]
    missing = unique_position()
    with pytest.raises(LookupError, match=missing):
        await repository.first_question(missing)


# -------------------------------------------------------------------- the packaged bank


class HashEmbedder:
    """Deterministic pseudo-embeddings (a unit vector seeded by the text's hash): fast."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.calls = 0

    def _vector(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
        vector = np.random.default_rng(seed).normal(size=self.dim)
        return (vector / np.linalg.norm(vector)).tolist()

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        return [self._vector(text) for text in texts]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_documents(texts)


@pytest.fixture
async def empty_bank_db(settings: Settings) -> AsyncIterator[Database]:
    """A migrated throwaway database whose question bank is empty."""
    async with scratch_database(settings, "turnjudge_bank") as database:
        yield database


async def test_seeding_the_packaged_bank(empty_bank_db: Database, settings: Settings) -> None:
    bank = load_bank()
    assert len({(q.position, q.text) for q in bank}) == len(bank) >= 150
    assert len({q.position for q in bank}) >= 5
    for position in {q.position for q in bank}:
        languages = {q.language for q in bank if q.position == position}
        assert languages >= {"ko", "en"}, f"{position} lacks a language: {languages}"

    # Seeding is about rows, not vectors: a fast deterministic embedder on an empty bank.
    repository = QuestionRepository(empty_bank_db, HashEmbedder(settings.embedding_dim))
    assert await repository.count() == 0
    inserted = await seed_questions(repository)
    assert inserted == len(bank) >= 150
    assert await repository.count() == len(bank)
    positions = await repository.positions()
    assert len(positions) >= 5 and set(positions) == {q.position for q in bank}
    async with empty_bank_db.transaction() as s:
        languages = set(await s.scalars(select(Question.language).distinct()))
        stored = {
            (row.position, row.text)
            for row in await s.execute(select(Question.position, Question.text))
        }
    assert languages >= {"ko", "en"}
    assert stored == {(q.position, q.text) for q in bank}

    assert await seed_questions(repository) == 0  # second seeding inserts nothing
    assert await repository.count() == len(bank)


async def test_an_embedder_of_another_dimension_is_refused_at_start(
    empty_bank_db: Database, settings: Settings
) -> None:
    """The ORM column has no dimension; the migrated column's is checked against the model."""
    dim = settings.embedding_dim
    repository = QuestionRepository(empty_bank_db, HashEmbedder(dim))
    assert await repository.stored_dimension() == dim
    await repository.check_dimension()  # the configured model fits
    wider = QuestionRepository(empty_bank_db, HashEmbedder(dim * 2))
    with pytest.raises(EmbeddingDimensionError, match=f"stores {dim}-d vectors.*{dim * 2}-d"):
        await wider.check_dimension()


async def test_seeding_fills_expected_points_of_stored_rows(
    empty_bank_db: Database, settings: Settings
) -> None:
    """Rows stored before the column existed (points = []) get their points on re-seeding."""
    bank = load_bank()
    assert all(3 <= len(q.expected_points) <= 6 for q in bank)
    repository = QuestionRepository(empty_bank_db, HashEmbedder(settings.embedding_dim))
    await seed_questions(repository)
    async with empty_bank_db.transaction() as s:
        await s.execute(update(Question).values(expected_points=[]))
    assert await seed_questions(repository) == 0
    async with empty_bank_db.transaction() as s:
        stored = {
            (row.position, row.text): row.expected_points
            for row in await s.execute(
                select(Question.position, Question.text, Question.expected_points)
            )
        }
    assert stored == {(q.position, q.text): list(q.expected_points) for q in bank}
    first = await repository.first_question("backend", "en")
    assert await repository.expected_points(first.id) == list(
        next(q.expected_points for q in bank if q.text == first.text)
    )


ENGLISH_PARAPHRASES = [
    (
        "payment webhooks",
        "How can a payment webhook handler be made safe against retries so customers are never"
        " charged twice?",
    ),
    (
        "READ COMMITTED and REPEATABLE READ",
        "What is the difference between the read committed and repeatable read isolation levels"
        " in Postgres?",
    ),
    (
        "CrashLoopBackOff after a deploy",
        "After a release our Kubernetes pods keep crashing and restarting. How would you debug it?",
    ),
    (
        "validation loss started rising",
        "My training loss still goes down but validation loss increases after a few epochs. What"
        " should I do?",
    ),
    ("bias-variance", "Can you explain the tradeoff between bias and variance?"),
]


async def test_paraphrases_find_their_bank_questions(questions: QuestionRepository) -> None:
    """With the packaged MiniLM, an English paraphrase finds its bank question first."""
    await seed_questions(questions)  # idempotent
    bank = load_bank()
    for marker, paraphrase in ENGLISH_PARAPHRASES:
        matches = [q for q in bank if marker in q.text and q.language == "en"]
        assert len(matches) == 1, f"bank question containing {marker!r} not found (bank changed?)"
        (target,) = matches
        found = await questions.similar(paraphrase, k=3, position=target.position)
        assert found[0].text == target.text, paraphrase
        assert found[0].distance < found[1].distance
