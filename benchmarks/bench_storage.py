"""Storage benchmarks on the embedded PostgreSQL: bulk upserts and similar-question search.

Two measurements, each on its own throwaway database (dropped at the end):

a. Bulk upsert throughput of TURN_EVAL rows through
   `EvaluationStorageService.save_turn_evaluations` (200 sessions x 25 turns = 5,000 rows per
   batch): the insert path, then the re-upsert (update) path; median of 3 runs. The
   single-row path (`save_turn_evaluation`, one call per turn) is measured for context.
b. Similar-question search through `QuestionRepository.similar` (the product path: pooled
   session, `SET LOCAL hnsw.ef_search`, HNSW `vector_cosine_ops`) at 10k and 100k 384-d
   vectors: p50/p95 latency and recall@10 against exact search (`SET LOCAL
   enable_indexscan = off`), over a sweep of HNSW build parameters and `hnsw.ef_search`.
   The vectors are synthetic but clustered (200 centres with uneven sizes, points = centre +
   gaussian noise, normalised), plus, as a smaller real set, MiniLM embeddings of the
   packaged question bank.

Run with `python -m benchmarks.bench_storage` (`--quick` for a small smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector
from sqlalchemy import select, text

from api.settings import get_settings
from benchmarks.common import (
    machine_info,
    median,
    percentile,
    print_table,
    throwaway_database,
    write_results,
)
from storage.bank import load_bank
from storage.database import Database
from storage.embeddings import load_embedder
from storage.evaluations import EvaluationStorageService, TurnEvaluationInput
from storage.models import Question
from storage.questions import DEFAULT_EF_SEARCH, QuestionRepository
from storage.sessions import SessionStore, TranscriptTurn

NAME = "storage"
DIM = 384
K = 10
TARGET_ROWS_PER_S = 5_000
TARGET_P50_MS = 5.0
TARGET_RECALL = 0.95
PRODUCT_INDEX = (16, 64)  # m, ef_construction of the migration's HNSW index


@dataclass(frozen=True)
class Plan:
    """Sizes of one benchmark run."""

    sessions: int = 200
    turns: int = 25
    runs: int = 3
    single_saves: int = 300
    sizes: tuple[int, ...] = (10_000, 100_000)
    index_configs: tuple[tuple[int, int], ...] = ((16, 64), (16, 128), (24, 128))
    ef_values: tuple[int, ...] = (40, 64, 100, 200)
    queries: int = 200
    filtered_queries: int = 100
    clusters: int = 200
    noise: float = 1.0
    positions: int = 10


QUICK = Plan(
    sessions=20,
    turns=5,
    runs=1,
    single_saves=20,
    sizes=(2_000,),
    index_configs=((16, 64),),
    ef_values=(40, 100),
    queries=30,
    filtered_queries=20,
)


# ------------------------------------------------------------------- a. bulk upserts


def _details(turn: int, score: int) -> dict[str, Any]:
    """A realistic TURN_EVAL payload (about 700 bytes of JSON)."""
    return {
        "score": score,
        "analysis": (
            f"Turn {turn}: the answer names the mechanism and gives a concrete example with "
            "numbers, but does not discuss failure modes or how the design would be tested."
        ),
        "rubrics": {
            criterion: {"score": (score + offset) % 101, "reason": f"{criterion} assessment"}
            for offset, criterion in enumerate(("relevance", "depth", "specificity", "clarity"))
        },
        "feedback": "Explain the trade-offs and how you would verify the fix in production.",
        "keywords": ["idempotency", "transaction", "retry"],
        "strengths": ["concrete numbers"],
        "improvements": ["failure modes"],
        "judge": {"kind": "heuristic", "model": None, "prompt_version": "v1"},
        "latency_ms": 12.5,
    }


async def _create_sessions(store: SessionStore, count: int, turns: int) -> list[uuid.UUID]:
    """`count` sessions with `turns` answered turns each, 10 created concurrently."""

    async def one() -> uuid.UUID:
        view = await store.create_session(
            participant_id=f"bench-{uuid.uuid4().hex[:8]}",
            position="backend",
            language="en",
            max_turns=turns,
        )
        await store.save_transcript(
            view.id,
            [
                TranscriptTurn(f"Question {n}?", f"Answer {n} with some detail.")
                for n in range(1, turns + 1)
            ],
        )
        return view.id

    created: list[uuid.UUID] = []
    for start in range(0, count, 10):
        created += await asyncio.gather(*(one() for _ in range(min(10, count - start))))
    return created


async def bench_bulk_upsert(db: Database, plan: Plan) -> dict[str, Any]:
    """Measure save_turn_evaluations on the insert and the update path (median of runs).

    Args:
        db: A migrated throwaway database.
        plan: Batch shape and number of runs.

    Returns:
        Per-run timings, medians and the single-row comparison.
    """
    store, service = SessionStore(db), EvaluationStorageService(db)
    rows = plan.sessions * plan.turns
    runs = []
    for run in range(plan.runs):
        session_ids = await _create_sessions(store, plan.sessions, plan.turns)
        items = [
            TurnEvaluationInput(sid, turn, _details(turn, 50 + run))
            for sid in session_ids
            for turn in range(1, plan.turns + 1)
        ]
        started = time.perf_counter()
        saved = await service.save_turn_evaluations(items)
        insert_s = time.perf_counter() - started
        if len(saved) != rows or not all(row.created for row in saved):
            raise RuntimeError("insert path did not create every row")

        updates = [TurnEvaluationInput(i.session_id, i.turn, _details(i.turn, 60)) for i in items]
        started = time.perf_counter()
        saved = await service.save_turn_evaluations(updates)
        update_s = time.perf_counter() - started
        if len(saved) != rows or any(row.created for row in saved):
            raise RuntimeError("update path created rows")
        runs.append(
            {
                "rows": rows,
                "insert_s": round(insert_s, 4),
                "update_s": round(update_s, 4),
                "insert_rows_per_s": round(rows / insert_s),
                "update_rows_per_s": round(rows / update_s),
            }
        )
        print(
            f"  run {run + 1}: insert {rows / insert_s:,.0f} rows/s, "
            f"update {rows / update_s:,.0f} rows/s",
            flush=True,
        )

    # The single-row path, one statement per call, for comparison.
    per_session = 25
    sessions_needed = -(-plan.single_saves // per_session)
    single_ids = await _create_sessions(store, sessions_needed, per_session)
    latencies = []
    for index in range(plan.single_saves):
        sid, turn = single_ids[index // per_session], index % per_session + 1
        started = time.perf_counter()
        await service.save_turn_evaluation(sid, turn, _details(turn, 70))
        latencies.append(time.perf_counter() - started)

    return {
        "batch": {"sessions": plan.sessions, "turns": plan.turns, "rows": rows},
        "runs": runs,
        "median_insert_rows_per_s": round(median([r["insert_rows_per_s"] for r in runs])),
        "median_update_rows_per_s": round(median([r["update_rows_per_s"] for r in runs])),
        "single_row": {
            "calls": plan.single_saves,
            "p50_ms": round(percentile(latencies, 50) * 1000, 3),
            "p95_ms": round(percentile(latencies, 95) * 1000, 3),
            "rows_per_s": round(plan.single_saves / sum(latencies)),
        },
    }


# -------------------------------------------------------------- b. similarity search


class VectorQueriesOnly:
    """Embedder stand-in for vector queries: the repository only reads `dim` from it."""

    def __init__(self, dim: int) -> None:
        self._dim = dim

    @property
    def dim(self) -> int:
        """The vector size of the bank."""
        return self._dim

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Never called: the benchmark queries with vectors."""
        raise RuntimeError("the search benchmark queries with vectors only")

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Never called: rows are bulk-loaded with COPY."""
        raise RuntimeError("the search benchmark loads vectors with COPY")


@dataclass(frozen=True)
class ClusteredSource:
    """Clustered synthetic unit vectors: centre + gaussian noise, normalised."""

    centres: np.ndarray
    weights: np.ndarray
    noise: float

    @classmethod
    def create(cls, clusters: int, noise: float, rng: np.random.Generator) -> ClusteredSource:
        """Random centres on the unit sphere with lognormal (uneven) cluster sizes."""
        centres = rng.normal(size=(clusters, DIM))
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        weights = rng.lognormal(mean=0.0, sigma=0.75, size=clusters)
        return cls(centres=centres, weights=weights / weights.sum(), noise=noise)

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` unit vectors (float32)."""
        labels = rng.choice(len(self.centres), size=count, p=self.weights)
        points = self.centres[labels] + rng.normal(
            scale=self.noise / np.sqrt(DIM), size=(count, DIM)
        )
        points /= np.linalg.norm(points, axis=1, keepdims=True)
        return points.astype(np.float32)


async def _raw_connection(db: Database) -> asyncpg.Connection:
    """A dedicated asyncpg connection with pgvector's binary codec, for COPY and DDL only.

    The codec is never registered on the engine's pooled connections (it would clash with
    `pgvector.sqlalchemy.Vector`'s text encoding).
    """
    conn = await asyncpg.connect(db.urls.libpq)
    await register_vector(conn)
    return conn


async def _load(
    conn: asyncpg.Connection,
    vectors: np.ndarray,
    positions: Sequence[str],
    languages: Sequence[str] | None = None,
    texts: Sequence[str] | None = None,
) -> float:
    """Replace the bank with `vectors` (COPY, no index); return the load time in seconds."""
    await conn.execute("TRUNCATE questions RESTART IDENTITY CASCADE")
    await conn.execute("DROP INDEX IF EXISTS ix_questions_embedding_hnsw")
    started = time.perf_counter()
    await conn.copy_records_to_table(
        "questions",
        columns=["position", "category", "language", "text", "embedding"],
        records=(
            (
                positions[i],
                "bench",
                languages[i] if languages else "en",
                texts[i] if texts else f"q{i}",
                vectors[i],
            )
            for i in range(len(vectors))
        ),
    )
    elapsed = time.perf_counter() - started
    await conn.execute("ANALYZE questions")
    return elapsed


async def _build_index(conn: asyncpg.Connection, m: int, ef_construction: int) -> dict[str, Any]:
    """(Re)build the HNSW index with the given parameters; return build time and size."""
    await conn.execute("DROP INDEX IF EXISTS ix_questions_embedding_hnsw")
    await conn.execute("SET maintenance_work_mem = '1GB'")
    started = time.perf_counter()
    await conn.execute(
        "CREATE INDEX ix_questions_embedding_hnsw ON questions USING hnsw "
        f"(embedding vector_cosine_ops) WITH (m = {int(m)}, ef_construction = "
        f"{int(ef_construction)})"
    )
    build_s = time.perf_counter() - started
    await conn.execute("RESET maintenance_work_mem")
    await conn.execute("ANALYZE questions")
    size = await conn.fetchval("SELECT pg_relation_size('ix_questions_embedding_hnsw')")
    return {"build_s": round(build_s, 2), "index_mb": round(size / 2**20, 1)}


async def _exact(
    db: Database, queries: np.ndarray, position: str | None = None
) -> tuple[list[list[int]], list[float]]:
    """Exact top-K ids per query (no index scan) and the per-query latencies."""
    truth, latencies = [], []
    for vector in queries:
        distance = Question.embedding.cosine_distance(vector.tolist())
        stmt = select(Question.id).order_by(distance).limit(K)
        if position is not None:
            stmt = stmt.where(Question.position == position)
        started = time.perf_counter()
        async with db.transaction() as s:
            await s.execute(text("SET LOCAL enable_indexscan = off"))
            truth.append(list(await s.scalars(stmt)))
        latencies.append(time.perf_counter() - started)
    return truth, latencies


async def _uses_hnsw(db: Database, vector: np.ndarray, position: str | None) -> bool:
    """Whether the planner answers this query shape with the HNSW index."""
    distance = Question.embedding.cosine_distance(vector.tolist())
    stmt = select(Question.id).order_by(distance).limit(K)
    if position is not None:
        stmt = stmt.where(Question.position == position)
    compiled = stmt.compile(db.engine.sync_engine, compile_kwargs={"literal_binds": True})
    async with db.transaction() as s:
        plan = "\n".join(await s.scalars(text(f"EXPLAIN {compiled}")))
    return "ix_questions_embedding_hnsw" in plan


async def _measure(
    repository: QuestionRepository,
    conn: asyncpg.Connection,
    queries: np.ndarray,
    truth: Sequence[Sequence[int]],
    ef_search: int,
    position: str | None = None,
    warmup: int = 20,
    passes: int = 2,
) -> dict[str, Any]:
    """Latency and recall@K of `repository.similar` for every query (the product path).

    Every query runs `passes` times (the machine may be shared; more samples steady the
    percentiles). The same SQL is also timed on a bare asyncpg connection ("index only"),
    which separates the index's work from the cost of the pooled-session product path.
    """
    for vector in queries[:warmup]:
        await repository.similar(vector.tolist(), k=K, position=position, ef_search=ef_search)
    latencies, recalls, returned = [], [], []
    for _ in range(passes):
        for vector, expected in zip(queries, truth, strict=True):
            started = time.perf_counter()
            found = await repository.similar(
                vector.tolist(), k=K, position=position, ef_search=ef_search
            )
            latencies.append(time.perf_counter() - started)
            returned.append(len(found))
            expected_ids = set(expected)
            recalls.append(len(expected_ids & {q.id for q in found}) / max(len(expected_ids), 1))

    sql = "SELECT id FROM questions {where} ORDER BY embedding <=> $1 LIMIT {k}".format(
        where="WHERE position = $2" if position is not None else "", k=K
    )
    args: tuple[Any, ...] = (position,) if position is not None else ()
    raw_latencies = []
    async with conn.transaction():
        await conn.execute(f"SET LOCAL hnsw.ef_search = {max(int(ef_search), K)}")
        for vector in queries[:warmup]:
            await conn.fetch(sql, vector, *args)
        for vector in queries:
            started = time.perf_counter()
            await conn.fetch(sql, vector, *args)
            raw_latencies.append(time.perf_counter() - started)
    return {
        "ef_search": ef_search,
        "p50_ms": round(percentile(latencies, 50) * 1000, 3),
        "p95_ms": round(percentile(latencies, 95) * 1000, 3),
        "index_only_p50_ms": round(percentile(raw_latencies, 50) * 1000, 3),
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "mean_rows_returned": round(float(np.mean(returned)), 2),
        "share_short": round(float(np.mean([n < K for n in returned])), 4),
        "samples": len(latencies),
    }


def _numpy_agreement(data: np.ndarray, queries: np.ndarray, truth: list[list[int]]) -> float:
    """Share of the database's exact top-K ids that brute-force numpy also finds."""
    agree = []
    for start in range(0, len(queries), 50):
        sims = queries[start : start + 50] @ data.T
        top = np.argpartition(-sims, K, axis=1)[:, :K] + 1  # ids are 1-based (RESTART IDENTITY)
        for row, expected in zip(top, truth[start : start + 50], strict=True):
            agree.append(len(set(row.tolist()) & set(expected)) / K)
    return round(float(np.mean(agree)), 4)


async def bench_search(db: Database, plan: Plan) -> dict[str, Any]:
    """The synthetic clustered sweep at every size, then the real question-bank embeddings.

    Args:
        db: A migrated throwaway database (its question bank is replaced).
        plan: Sizes, index configurations and ef_search values to sweep.

    Returns:
        Raw results per size / configuration / ef_search.
    """
    rng = np.random.default_rng(20261124)
    source = ClusteredSource.create(plan.clusters, plan.noise, rng)
    data = source.sample(max(plan.sizes), rng)
    queries = source.sample(plan.queries, rng)
    positions = [f"p{i % plan.positions}" for i in range(len(data))]
    filter_position = "p3"
    repository = QuestionRepository(db, VectorQueriesOnly(DIM))
    conn = await _raw_connection(db)
    results: dict[str, Any] = {
        "dataset": {
            "kind": "synthetic clustered",
            "clusters": plan.clusters,
            "cluster_sizes": "lognormal(sigma=0.75) weights",
            "noise": f"centre + N(0, ({plan.noise}/sqrt({DIM}))^2 I), normalised",
            "mean_top10_cosine": None,
            "queries": plan.queries,
            "positions": plan.positions,
        },
        "sizes": {},
    }
    try:
        for size in plan.sizes:
            print(f"  search: loading {size:,} clustered vectors", flush=True)
            load_s = await _load(conn, data[:size], positions[:size])
            truth, exact_latencies = await _exact(db, queries)
            filtered_truth, _ = await _exact(db, queries[: plan.filtered_queries], filter_position)
            entry: dict[str, Any] = {
                "rows": size,
                "load_s": round(load_s, 2),
                "exact_p50_ms": round(percentile(exact_latencies, 50) * 1000, 2),
                "exact_p95_ms": round(percentile(exact_latencies, 95) * 1000, 2),
                "exact_vs_numpy_agreement": _numpy_agreement(data[:size], queries, truth),
                "configs": [],
            }
            if size == max(plan.sizes):
                sims = np.sort(queries @ data[:size].T, axis=1)[:, -K:]
                results["dataset"]["mean_top10_cosine"] = round(float(sims.mean()), 3)
            for m, ef_construction in plan.index_configs:
                build = await _build_index(conn, m, ef_construction)
                print(
                    f"  search: {size:,} rows, m={m} ef_construction={ef_construction}: "
                    f"built in {build['build_s']} s",
                    flush=True,
                )
                sweep = [
                    await _measure(repository, conn, queries, truth, ef) for ef in plan.ef_values
                ]
                filtered = await _measure(
                    repository,
                    conn,
                    queries[: plan.filtered_queries],
                    filtered_truth,
                    DEFAULT_EF_SEARCH,
                    position=filter_position,
                )
                entry["configs"].append(
                    {
                        "m": m,
                        "ef_construction": ef_construction,
                        **build,
                        "sweep": sweep,
                        "filtered_default_ef": filtered,
                        "plan_uses_hnsw": await _uses_hnsw(db, queries[0], None),
                        "filtered_plan_uses_hnsw": await _uses_hnsw(
                            db, queries[0], filter_position
                        ),
                    }
                )
            results["sizes"][str(size)] = entry
        results["real"] = await _bench_real_bank(db, conn, repository, plan)
    finally:
        await conn.close()
    return results


async def _bench_real_bank(
    db: Database, conn: asyncpg.Connection, repository: QuestionRepository, plan: Plan
) -> dict[str, Any]:
    """Real MiniLM embeddings of the packaged bank; every bank text is also a query."""
    settings = get_settings()
    embedder = await asyncio.to_thread(load_embedder, settings)
    bank = load_bank()
    texts = [q.text for q in bank]
    vectors = np.asarray(await asyncio.to_thread(embedder.embed_documents, texts), np.float32)
    query_vectors = np.asarray(await asyncio.to_thread(embedder.embed_queries, texts), np.float32)
    await _load(conn, vectors, [q.position for q in bank], [q.language for q in bank], texts)
    m, ef_construction = PRODUCT_INDEX
    build = await _build_index(conn, m, ef_construction)
    truth, exact_latencies = await _exact(db, query_vectors)
    sweep = [
        await _measure(repository, conn, query_vectors, truth, ef)
        for ef in sorted({plan.ef_values[0], DEFAULT_EF_SEARCH})
    ]
    return {
        "rows": len(bank),
        "model": settings.embedding_model
        if settings.embedding_backend.value == "sentence-transformers"
        else settings.embedding_backend.value,
        "m": m,
        "ef_construction": ef_construction,
        **build,
        "exact_p50_ms": round(percentile(exact_latencies, 50) * 1000, 2),
        "sweep": sweep,
    }


def _choose(search: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """Pick HNSW parameters for the largest size.

    Per index configuration, the smallest swept ef_search reaching the recall target; among
    those points, the one with the lowest index-only p50 (the least noisy latency measure on
    a shared machine), ties broken by build time. Whether its product-path p50 meets the
    latency target is reported alongside.
    """
    largest = search["sizes"][str(max(plan.sizes))]
    candidates = []
    for config in largest["configs"]:
        reaching = [p for p in config["sweep"] if p["recall_at_10"] >= TARGET_RECALL]
        if reaching:
            point = min(reaching, key=lambda p: p["ef_search"])
            candidates.append((point["index_only_p50_ms"], config["build_s"], config, point))
    product = next(
        (c for c in largest["configs"] if (c["m"], c["ef_construction"]) == PRODUCT_INDEX), None
    )
    product_point = next(
        (p for p in (product or {}).get("sweep", []) if p["ef_search"] == DEFAULT_EF_SEARCH), {}
    )
    default = {
        "m": PRODUCT_INDEX[0],
        "ef_construction": PRODUCT_INDEX[1],
        "ef_search": DEFAULT_EF_SEARCH,
        **product_point,
    }
    if not candidates:
        return {"recall_met": False, "rows": largest["rows"], "product_default": default}
    _, build_s, config, point = min(candidates, key=lambda c: (c[0], c[1]))
    return {
        "recall_met": True,
        "latency_met": point["p50_ms"] <= TARGET_P50_MS,
        "rows": largest["rows"],
        "m": config["m"],
        "ef_construction": config["ef_construction"],
        "ef_search": point["ef_search"],
        "build_s": build_s,
        "p50_ms": point["p50_ms"],
        "p95_ms": point["p95_ms"],
        "index_only_p50_ms": point["index_only_p50_ms"],
        "recall_at_10": point["recall_at_10"],
        "product_default": default,
    }


# ----------------------------------------------------------------------------- report


def _report(
    upsert: dict[str, Any],
    search: dict[str, Any],
    chosen: dict[str, Any],
    plan: Plan,
    machine: dict[str, Any],
    elapsed_s: float,
) -> dict[str, Any]:
    tables = []
    upsert_rows = [
        [
            f"run {i + 1}",
            r["rows"],
            r["insert_s"],
            r["insert_rows_per_s"],
            r["update_s"],
            r["update_rows_per_s"],
        ]
        for i, r in enumerate(upsert["runs"])
    ]
    upsert_rows.append(
        [
            "median",
            upsert["batch"]["rows"],
            "",
            upsert["median_insert_rows_per_s"],
            "",
            upsert["median_update_rows_per_s"],
        ]
    )
    tables.append(
        {
            "title": (
                f"a. Bulk TURN_EVAL upsert, {upsert['batch']['sessions']} sessions x "
                f"{upsert['batch']['turns']} turns per call (target >= "
                f"{TARGET_ROWS_PER_S:,} rows/s)"
            ),
            "headers": [
                "run",
                "rows",
                "insert s",
                "insert rows/s",
                "re-upsert s",
                "re-upsert rows/s",
            ],
            "rows": upsert_rows,
        }
    )
    single = upsert["single_row"]
    tables.append(
        {
            "title": "a'. Single-row save_turn_evaluation, for comparison",
            "headers": ["calls", "p50 ms", "p95 ms", "rows/s"],
            "rows": [[single["calls"], single["p50_ms"], single["p95_ms"], single["rows_per_s"]]],
        }
    )
    sweep_rows = []
    for size, entry in search["sizes"].items():
        for config in entry["configs"]:
            for point in config["sweep"]:
                sweep_rows.append(
                    [
                        f"{int(size):,}",
                        config["m"],
                        config["ef_construction"],
                        config["build_s"],
                        config["index_mb"],
                        point["ef_search"],
                        point["p50_ms"],
                        point["p95_ms"],
                        point["index_only_p50_ms"],
                        point["recall_at_10"],
                    ]
                )
        sweep_rows.append(
            [
                f"{int(size):,}",
                "exact",
                "",
                "",
                "",
                "",
                entry["exact_p50_ms"],
                entry["exact_p95_ms"],
                "",
                1.0,
            ]
        )
    tables.append(
        {
            "title": (
                f"b. similar(vector, k=10) via QuestionRepository, synthetic clustered "
                f"384-d vectors ({plan.clusters} centres + gaussian noise, normalised); "
                f"targets p50 <= {TARGET_P50_MS} ms, recall@10 >= {TARGET_RECALL}"
            ),
            "headers": [
                "rows",
                "m",
                "ef_construction",
                "build s",
                "index MB",
                "ef_search",
                "p50 ms",
                "p95 ms",
                "index-only p50 ms",
                "recall@10",
            ],
            "rows": sweep_rows,
        }
    )
    filtered_rows = [
        [
            f"{int(size):,}",
            config["m"],
            config["ef_construction"],
            config["filtered_default_ef"]["ef_search"],
            config["filtered_default_ef"]["p50_ms"],
            config["filtered_default_ef"]["p95_ms"],
            config["filtered_default_ef"]["recall_at_10"],
            config["filtered_default_ef"]["mean_rows_returned"],
            config["filtered_default_ef"]["share_short"],
            "HNSW" if config["filtered_plan_uses_hnsw"] else "other index / scan",
        ]
        for size, entry in search["sizes"].items()
        for config in entry["configs"]
    ]
    tables.append(
        {
            "title": (
                f"b'. Filtered search similar(vector, k=10, position=...) with "
                f"1/{plan.positions} of the rows in the position"
            ),
            "headers": [
                "rows",
                "m",
                "ef_construction",
                "ef_search",
                "p50 ms",
                "p95 ms",
                "recall@10",
                "rows returned (of 10)",
                "share < 10 rows",
                "plan",
            ],
            "rows": filtered_rows,
        }
    )
    real = search["real"]
    tables.append(
        {
            "title": (
                f"b''. Real embeddings: the packaged question bank ({real['rows']} texts, "
                f"{real['model']}), each text as a query"
            ),
            "headers": [
                "rows",
                "m",
                "ef_construction",
                "ef_search",
                "p50 ms",
                "p95 ms",
                "index-only p50 ms",
                "recall@10",
                "exact p50 ms",
            ],
            "rows": [
                [
                    real["rows"],
                    real["m"],
                    real["ef_construction"],
                    p["ef_search"],
                    p["p50_ms"],
                    p["p95_ms"],
                    p["index_only_p50_ms"],
                    p["recall_at_10"],
                    real["exact_p50_ms"],
                ]
                for p in real["sweep"]
            ],
        }
    )

    dataset = search["dataset"]
    notes = [
        "Synthetic vectors are clustered, not uniform: "
        f"{dataset['clusters']} random unit centres with lognormal cluster sizes, points = "
        f"{dataset['noise']}; mean cosine of a query to its 10 nearest rows "
        f"{dataset['mean_top10_cosine']}. Queries are fresh draws from the same distribution.",
        "Latency is wall time of QuestionRepository.similar (pooled connection, BEGIN, SET "
        "LOCAL hnsw.ef_search, SELECT with ORDER BY cosine distance LIMIT 10, COMMIT), "
        "every query twice after 20 warm-up queries; index-only = the same SQL on a bare "
        "asyncpg connection; exact = the same query with SET LOCAL enable_indexscan = off "
        "(cross-checked against numpy brute force).",
        "Rows are loaded with COPY with the HNSW index dropped, then the index is built with "
        "maintenance_work_mem = 1GB.",
    ]
    default = chosen["product_default"]
    notes.append(
        f"Shipped defaults (migration m={default['m']}, ef_construction="
        f"{default['ef_construction']}; DEFAULT_EF_SEARCH={default['ef_search']}) at "
        f"{chosen['rows']:,} rows: p50 {default.get('p50_ms')} ms, recall@10 "
        f"{default.get('recall_at_10')}."
    )
    if chosen.get("recall_met"):
        verdict = "meets" if chosen["latency_met"] else "misses"
        notes.append(
            f"Chosen for {chosen['rows']:,} rows (smallest ef_search reaching recall@10 >= "
            f"{TARGET_RECALL} per index, then the lowest index-only p50): m={chosen['m']}, "
            f"ef_construction={chosen['ef_construction']}, hnsw.ef_search="
            f"{chosen['ef_search']}: recall@10 {chosen['recall_at_10']}, p50 "
            f"{chosen['p50_ms']} ms through the repository ({verdict} the {TARGET_P50_MS} ms "
            f"target), {chosen['index_only_p50_ms']} ms index only, build {chosen['build_s']} s."
        )
    else:
        notes.append(f"No swept configuration reached recall@10 >= {TARGET_RECALL}.")
    short = [
        (size, c["filtered_default_ef"]["share_short"])
        for size, entry in search["sizes"].items()
        for c in entry["configs"]
        if c["filtered_plan_uses_hnsw"]
    ]
    if short:
        worst = max(share for _, share in short)
        notes.append(
            "Filtered searches: pgvector 0.6 applies the WHERE clause after the HNSW scan, so "
            f"with 1/{plan.positions} of the rows in the position up to {worst:.0%} of "
            "searches returned fewer than 10 rows at ef_search=100 (see b')."
        )
    notes.append(
        f"Machine load average at start {machine.get('load_average_1m')} on "
        f"{machine.get('cpu_count')} CPUs (shared machine); whole benchmark {elapsed_s:.0f} s."
    )
    return {
        "title": "Storage: bulk upserts and similar-question search",
        "tables": tables,
        "notes": notes,
    }


async def run(plan: Plan) -> dict[str, Any]:
    """Run both measurements on throwaway databases and write `results/storage.json`.

    Args:
        plan: What to measure (`Plan()` for the full run, `QUICK` for a smoke run).

    Returns:
        The results document that was written.
    """
    started = time.perf_counter()
    settings = get_settings()
    async with throwaway_database(settings, prefix="turnjudge_bench_upsert") as db:
        machine = await machine_info(db)
        print("a. bulk upsert", flush=True)
        upsert = await bench_bulk_upsert(db, plan)
    async with throwaway_database(settings, prefix="turnjudge_bench_search") as db:
        print("b. similar-question search", flush=True)
        search = await bench_search(db, plan)
    chosen = _choose(search, plan)
    elapsed = time.perf_counter() - started
    report = _report(upsert, search, chosen, plan, machine, elapsed)
    for table in report["tables"]:
        print_table(table["title"], table["headers"], table["rows"])
    for note in report["notes"]:
        print(f"- {note}")
    document = {
        **report,
        "machine": machine,
        "data": {
            "plan": plan.__dict__,
            "targets": {
                "rows_per_s": TARGET_ROWS_PER_S,
                "p50_ms": TARGET_P50_MS,
                "recall_at_10": TARGET_RECALL,
            },
            "bulk_upsert": upsert,
            "search": search,
            "chosen": chosen,
            "elapsed_s": round(elapsed, 1),
        },
    }
    path = write_results(NAME if plan == Plan() else f"{NAME}_quick", document)
    print(f"\nwrote {path}", flush=True)
    return document


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point for `python -m benchmarks.bench_storage` and `python -m benchmarks`.

    Args:
        argv: Command-line arguments; None means none (the full run).
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_storage", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small smoke run (written to results/storage_quick.json)",
    )
    args = parser.parse_args(list(argv or []))
    asyncio.run(run(QUICK if args.quick else Plan()))


if __name__ == "__main__":
    main(sys.argv[1:])
