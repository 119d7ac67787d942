"""Question generators against the real embedded PostgreSQL (pgvector) and the real embedder.

Each test seeds a few questions under its own position (`pos-<random>`), so it sees only its
rows whatever else the shared test database holds.
"""

from __future__ import annotations

import uuid

import pytest

from nodes.question_generation import (
    AskedTurn,
    BankQuestionGenerator,
    GeneratedQuestionOut,
    LLMQuestionGenerator,
    NoQuestionsLeftError,
)
from storage.embeddings import Embedder
from storage.questions import NewQuestion, QuestionRepository
from tests.support.fake_chat import ScriptedChatModel

pytestmark = pytest.mark.integration

BANK = [
    ("experience", "Tell me about the most complex backend system you have built."),
    ("databases", "How do you decide which columns of a PostgreSQL table to index?"),
    ("caching", "How would you put a Redis cache in front of a slow read path?"),
    ("deployment", "How do you roll out a new version on Kubernetes without downtime?"),
    ("frontend", "How do you keep a React component from re-rendering too often?"),
]


async def seed(
    questions: QuestionRepository, language: str = "en", bank: list[tuple[str, str]] = BANK
) -> tuple[str, list[int]]:
    """A fresh position with `bank` added one by one (ids ascending in bank order)."""
    position = f"pos-{uuid.uuid4().hex[:8]}"
    ids = [
        await questions.add(NewQuestion(position, category, language, text))
        for category, text in bank
    ]
    assert ids == sorted(ids)
    return position, ids


def asked(question_text: str, question_id: int | None, answer: str | None) -> AskedTurn:
    return AskedTurn(question=question_text, answer=answer, question_id=question_id, category=None)


async def test_first_question_is_the_lowest_id(questions: QuestionRepository) -> None:
    position, ids = await seed(questions)
    first = await BankQuestionGenerator(questions).next_question(
        position=position, language="en", history=[]
    )
    assert first.question_id == ids[0]
    assert first.text == BANK[0][1] and first.category == "experience"
    assert first.source == "bank"


async def test_first_question_falls_back_to_any_language(questions: QuestionRepository) -> None:
    position, ids = await seed(questions, language="ko", bank=BANK[:2])
    first = await BankQuestionGenerator(questions).next_question(
        position=position, language="en", history=[]
    )
    assert first.question_id == ids[0]


async def test_follow_up_is_nearest_to_the_last_answer(questions: QuestionRepository) -> None:
    position, ids = await seed(questions)
    history = [
        asked(
            BANK[0][1],
            ids[0],
            "I built an order service; the hot path was product reads, so we added a Redis "
            "cache with a TTL and invalidated entries on writes, which cut database load.",
        )
    ]
    follow_up = await BankQuestionGenerator(questions).next_question(
        position=position, language="en", history=history
    )
    assert follow_up.question_id == ids[2]  # the Redis caching question
    assert follow_up.category == "caching"


async def test_never_repeats_and_ends_with_no_questions_left(
    questions: QuestionRepository,
) -> None:
    position, ids = await seed(questions)
    generator = BankQuestionGenerator(questions)
    history: list[AskedTurn] = []
    for _ in range(len(BANK)):
        question = await generator.next_question(position=position, language="en", history=history)
        history.append(asked(question.text, question.question_id, f"About: {question.text}"))

    asked_ids = [turn.question_id for turn in history]
    assert sorted(i for i in asked_ids if i is not None) == ids
    assert len({turn.question for turn in history}) == len(BANK)
    with pytest.raises(NoQuestionsLeftError, match=position):
        await generator.next_question(position=position, language="en", history=history)


async def test_questions_asked_without_id_are_excluded_by_text(
    questions: QuestionRepository,
) -> None:
    position, ids = await seed(questions, bank=BANK[:3])
    history = [
        asked(BANK[0][1], ids[0], "Mostly Redis caching in front of PostgreSQL."),
        # the same text as the caching question, but asked without an id (LLM-written)
        asked(BANK[2][1], None, "Redis with cache-aside and a short TTL."),
    ]
    generator = BankQuestionGenerator(questions)
    follow_up = await generator.next_question(position=position, language="en", history=history)
    assert follow_up.question_id == ids[1]
    history.append(asked(follow_up.text, follow_up.question_id, "Composite indexes."))
    with pytest.raises(NoQuestionsLeftError):
        await generator.next_question(position=position, language="en", history=history)


async def test_llm_generator_with_real_bank_examples_and_fallback(
    questions: QuestionRepository, embedder: Embedder
) -> None:
    position, ids = await seed(questions)
    answer = "We put Redis in front of the catalogue reads and invalidated on writes."
    history = [asked(BANK[0][1], ids[0], answer)]
    # Every proposal repeats the asked question: rejected three times, then the bank answers.
    model = ScriptedChatModel(
        default=lambda schema, messages: GeneratedQuestionOut(
            question=BANK[0][1], category="experience"
        )
    )
    generator = LLMQuestionGenerator(
        model,
        questions,
        embedder,
        max_retries=0,
        backoff_s=0.0,
        timeout_s=5.0,
        examples_k=2,
        max_attempts=3,
    )
    question = await generator.next_question(position=position, language="en", history=history)

    assert len(model.calls) == 3
    examples = str(model.calls[0].messages[-1].content).split("<bank_examples>")[1]
    assert BANK[2][1] in examples.split("</bank_examples>")[0]  # nearest to the Redis answer
    assert question.source == "bank"
    assert question.question_id == ids[2]


async def test_llm_generator_accepts_a_new_question(
    questions: QuestionRepository, embedder: Embedder
) -> None:
    position, ids = await seed(questions)
    history = [asked(BANK[0][1], ids[0], "A payments platform on PostgreSQL.")]
    model = ScriptedChatModel(
        script=[
            GeneratedQuestionOut(question=BANK[0][1].upper(), category="experience"),
            GeneratedQuestionOut(
                question="How did you guarantee exactly-once payment processing?",
                category="Design",
            ),
        ]
    )
    generator = LLMQuestionGenerator(
        model, questions, embedder, max_retries=0, backoff_s=0.0, timeout_s=5.0
    )
    question = await generator.next_question(position=position, language="en", history=history)
    assert question.text == "How did you guarantee exactly-once payment processing?"
    assert question.source == "llm" and question.question_id is None
    assert question.category == "design"
    assert len(model.calls) == 2
