"""The question bank: storage, batch embedding and pgvector similarity search (seed 001 §4.1).

Similarity is cosine distance on L2-normalised embeddings, served by the HNSW
`vector_cosine_ops` index. pgvector 0.6 filters *after* the index scan, so a filtered search
(`position=`, `language=`, `exclude_ids=`) can find fewer than k matching rows among the
`hnsw.ef_search` candidates; `similar` then answers with an exact scan instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Float, func, literal, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from storage.database import Database
from storage.embeddings import (
    Embedder,
    EmbeddingDimensionError,
    aembed_documents,
    aembed_queries,
)
from storage.models import QUESTIONS, Question
from storage.views import SimilarQuestion, view_columns

DEFAULT_EF_SEARCH = 100


@dataclass(frozen=True)
class NewQuestion:
    """A question to add to the bank."""

    position: str
    category: str
    language: str
    text: str
    expected_points: tuple[str, ...] = ()
    """The ideas a good answer covers (3-6 for bank questions), in the question's language."""


class QuestionRepository:
    """Add, count and search bank questions."""

    def __init__(self, db: Database, embedder: Embedder, batch_size: int = 256) -> None:
        self._db = db
        self._embedder = embedder
        self._batch_size = batch_size

    async def add_many(self, questions: Iterable[NewQuestion]) -> int:
        """Insert questions not yet in the bank (unique on position + text); return how many.

        Embeds in batches of `batch_size`; already present questions are not re-embedded, only
        their expected points are brought up to date (rows seeded before the column existed
        get them), which makes seeding idempotent.
        """
        pending = list({(q.position, q.text): q for q in questions}.values())
        await self._update_points(pending)
        inserted = 0
        for start in range(0, len(pending), self._batch_size):
            batch = await self._not_stored(pending[start : start + self._batch_size])
            if not batch:
                continue
            vectors = await aembed_documents(self._embedder, [q.text for q in batch])
            rows = [
                {
                    "position": q.position,
                    "category": q.category,
                    "language": q.language,
                    "text": q.text,
                    "expected_points": list(q.expected_points),
                    "embedding": vector,
                }
                for q, vector in zip(batch, vectors, strict=True)
            ]
            async with self._db.transaction() as s:
                result = await s.execute(
                    insert(Question)
                    .values(rows)
                    .on_conflict_do_nothing(index_elements=[Question.position, Question.text])
                    .returning(Question.id)
                )
                inserted += len(result.all())
        return inserted

    async def _update_points(self, questions: Sequence[NewQuestion]) -> None:
        """Set the expected points of stored rows whose points differ (one UPDATE per row)."""
        wanted = {
            (q.position, q.text): list(q.expected_points) for q in questions if q.expected_points
        }
        if not wanted:
            return
        async with self._db.transaction() as s:
            result = await s.execute(
                select(
                    Question.id, Question.position, Question.text, Question.expected_points
                ).where(tuple_(Question.position, Question.text).in_(list(wanted)))
            )
            for row_id, position, text_value, points in result.all():
                target = wanted[(position, text_value)]
                if points != target:
                    await s.execute(
                        update(Question).where(Question.id == row_id).values(expected_points=target)
                    )

    async def expected_points(self, question_id: int) -> list[str]:
        """The expected points stored for a bank question ([] when it has none)."""
        async with self._db.transaction() as s:
            points = await s.scalar(
                select(Question.expected_points).where(Question.id == question_id)
            )
        return list(points or [])

    async def _not_stored(self, batch: list[NewQuestion]) -> list[NewQuestion]:
        """The questions of `batch` not in the bank yet (so re-seeding embeds nothing)."""
        keys = [(q.position, q.text) for q in batch]
        async with self._db.transaction() as s:
            result = await s.execute(
                select(Question.position, Question.text).where(
                    tuple_(Question.position, Question.text).in_(keys)
                )
            )
            stored = {(position, text_value) for position, text_value in result}
        return [q for q in batch if (q.position, q.text) not in stored]

    async def add(self, question: NewQuestion) -> int:
        """Insert one question (or find the existing one) and return its id."""
        await self.add_many([question])
        async with self._db.transaction() as s:
            question_id = await s.scalar(
                select(Question.id).where(
                    Question.position == question.position, Question.text == question.text
                )
            )
            assert question_id is not None
            return question_id

    async def count(self, position: str | None = None) -> int:
        """Number of bank questions, optionally for one position."""
        query = select(func.count()).select_from(Question)
        if position is not None:
            query = query.where(Question.position == position)
        async with self._db.transaction() as s:
            return int(await s.scalar(query) or 0)

    async def stored_dimension(self) -> int | None:
        """The dimension of the bank's `vector(n)` column; None before the migrations ran."""
        query = text(
            "SELECT atttypmod FROM pg_attribute"
            " WHERE attrelid = to_regclass('questions') AND attname = 'embedding'"
        )
        async with self._db.transaction() as s:
            dim = await s.scalar(query)
        return None if dim is None or dim < 0 else int(dim)  # -1: no dimension declared

    async def check_dimension(self) -> None:
        """Refuse an embedder whose vectors the bank's column cannot hold.

        The ORM column carries no dimension (models read no settings at import); the
        migration fixed it from EMBEDDING_DIM when it created the table, so a later change
        of model or EMBEDDING_DIM is caught here, at start-up, not on the first insert.
        """
        stored = await self.stored_dimension()
        if stored is not None and stored != self._embedder.dim:
            raise EmbeddingDimensionError(
                f"the question bank stores {stored}-d vectors but the embedding model produces "
                f"{self._embedder.dim}-d ones (EMBEDDING_DIM); use a model of {stored} dimensions "
                "or a new database"
            )

    async def positions(self) -> list[str]:
        """Positions that have at least one question."""
        async with self._db.transaction() as s:
            return list(
                await s.scalars(select(Question.position).distinct().order_by(Question.position))
            )

    async def embed_query(self, text_value: str) -> list[float]:
        """The query vector for `text_value`."""
        (vector,) = await aembed_queries(self._embedder, [text_value])
        return vector

    async def similar(
        self,
        query: str | Sequence[float],
        k: int = 5,
        *,
        position: str | None = None,
        language: str | None = None,
        exclude_ids: Iterable[int] = (),
        ef_search: int = DEFAULT_EF_SEARCH,
    ) -> list[SimilarQuestion]:
        """The k bank questions nearest to `query` (a text or a vector) by cosine distance."""
        if k < 1:
            raise ValueError(f"k must be >= 1 (got {k})")
        vector = await self.embed_query(query) if isinstance(query, str) else list(query)
        if len(vector) != self._embedder.dim:
            raise ValueError(
                f"query vector has {len(vector)} dimensions, the bank uses {self._embedder.dim}"
            )
        distance = Question.embedding.cosine_distance(vector)
        # Only the view's columns: the 384 floats of each row's embedding are never returned
        # (parsing them cost ~40% of the query's wall time, benchmarks/bench_storage.py).
        columns = view_columns(SimilarQuestion, QUESTIONS, distance=distance)
        stmt = select(*columns).order_by(columns[-1])  # ORDER BY distance: the HNSW index
        stmt = stmt.limit(k)
        if position is not None:
            stmt = stmt.where(Question.position == position)
        if language is not None:
            stmt = stmt.where(Question.language == language)
        excluded = list(exclude_ids)
        if excluded:
            stmt = stmt.where(Question.id.not_in(excluded))
        filtered = position is not None or language is not None or bool(excluded)
        async with self._db.transaction() as s:
            # SET LOCAL: scoped to this transaction, so pooled connections are not altered.
            await s.execute(text(f"SET LOCAL hnsw.ef_search = {max(int(ef_search), k)}"))
            rows = (await s.execute(stmt)).all()
            if filtered and len(rows) < k:
                # pgvector 0.6 applies WHERE after the HNSW scan: the ef_search candidates may
                # hold fewer than k matching rows. Answer exactly instead (one position's
                # share of the bank is small enough for a scan).
                await s.execute(text("SET LOCAL enable_indexscan = off"))
                rows = (await s.execute(stmt)).all()
        return [SimilarQuestion(**row._mapping) for row in rows]

    async def first_question(self, position: str, language: str | None = None) -> SimilarQuestion:
        """The opening question for a position: the lowest id of its bank (stable order)."""
        columns = view_columns(SimilarQuestion, QUESTIONS, distance=literal(0.0, Float))
        stmt = select(*columns).where(Question.position == position).order_by(Question.id)
        if language is not None:
            stmt = stmt.where(Question.language == language)
        async with self._db.transaction() as s:
            row = (await s.execute(stmt.limit(1))).one_or_none()
        if row is None:
            raise LookupError(f"the question bank has no questions for position {position!r}")
        return SimilarQuestion(**row._mapping)
