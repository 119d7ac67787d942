"""Choosing the next interview question (node 2): from the bank offline, by an LLM online.

Two generators behind one protocol:
- `BankQuestionGenerator` (offline, deterministic): opens with the position's first bank
  question, then follows up adaptively with the unasked bank question nearest (pgvector
  cosine) to the candidate's last answer, so the interview goes where the candidate went.
- `LLMQuestionGenerator`: the LLM writes the next question from the conversation so far,
  shown similar bank questions as examples of style and level. A proposal too similar to a
  question already asked (cosine of the embeddings above `max_similarity`) is rejected and
  regenerated; after `max_attempts` rejections, or when the LLM fails, the bank answers.
Neither ever repeats a question within a session.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, Field

from nodes.judges.judge import JudgeError
from nodes.judges.llm.client import ConcurrencyLimit, call_structured, structured_call
from nodes.judges.llm.prompts import BankExample, ConversationTurn, build_question_messages
from nodes.judges.settings import JudgeSettings
from storage.embeddings import Embedder, aembed_queries
from storage.views import SimilarQuestion

logger = logging.getLogger(__name__)

#: `hnsw.ef_search` for the exhaustion check: pgvector 0.6 filters (position, language,
#: exclusions) after the index scan, so a search that comes back empty with the default
#: ef_search may still have candidates; 1000 is pgvector's maximum.
EXHAUSTIVE_EF_SEARCH = 1000


@dataclass(frozen=True)
class AskedTurn:
    """A question already asked in this session, with its answer when given."""

    question: str
    answer: str | None
    question_id: int | None
    category: str | None


@dataclass(frozen=True)
class GeneratedQuestion:
    """The next question: a bank question (with its id) or an LLM-written one."""

    text: str
    question_id: int | None
    category: str | None
    source: Literal["bank", "llm"]
    expected_points: tuple[str, ...] = ()
    """Ideas a good answer covers: written by the LLM with its question (bank questions
    carry theirs in the bank, looked up by the judges)."""


class NoQuestionsLeftError(LookupError):
    """Every bank question of the position was already asked in this session."""


class QuestionGenerator(Protocol):
    """Produces the next question of an interview."""

    async def next_question(
        self, *, position: str, language: str, history: Sequence[AskedTurn]
    ) -> GeneratedQuestion:
        """The next question, never one already in `history`.

        Raises:
            NoQuestionsLeftError: Nothing left to ask for this position.
        """
        ...


class QuestionSource(Protocol):
    """The part of `storage.questions.QuestionRepository` the generators use."""

    async def similar(
        self,
        query: str | Sequence[float],
        k: int = 5,
        *,
        position: str | None = None,
        language: str | None = None,
        exclude_ids: Iterable[int] = (),
        ef_search: int = ...,
    ) -> list[SimilarQuestion]:
        """The k bank questions nearest to `query`."""
        ...

    async def first_question(self, position: str, language: str | None = None) -> SimilarQuestion:
        """The opening question of a position (lowest id); `LookupError` when none."""
        ...


def _norm_text(text: str) -> str:
    """Text compared for repeats: case, spacing and trailing punctuation ignored."""
    return re.sub(r"\s+", " ", text).strip().strip("?.!。 ").casefold()


def _last_answer(history: Sequence[AskedTurn]) -> str | None:
    for turn in reversed(history):
        if turn.answer and turn.answer.strip():
            return turn.answer
    return None


class BankQuestionGenerator:
    """Adaptive, deterministic questions from the bank (the offline generator)."""

    def __init__(self, questions: QuestionSource) -> None:
        """Use `questions` (a `QuestionRepository`) as the bank."""
        self._questions = questions

    async def next_question(
        self, *, position: str, language: str, history: Sequence[AskedTurn]
    ) -> GeneratedQuestion:
        """First: the position's opener; then the unasked question nearest the last answer.

        Questions in the interview language are preferred; when none of that language is
        left (or the bank has none), any language of the position is used.

        Raises:
            NoQuestionsLeftError: Every question of the position was asked.
        """
        if not history:
            opener = await self._opener(position, language)
            if opener is not None:
                return self._generated(opener)
        asked_ids = {t.question_id for t in history if t.question_id is not None}
        asked_texts = {_norm_text(t.question) for t in history}
        # The query: what the candidate last said; before any answer, the last question.
        query = _last_answer(history) or (history[-1].question if history else position)
        # Asked questions without an id may still equal bank rows: fetch enough to skip them.
        k = 1 + sum(1 for t in history if t.question_id is None)
        for lang in (language, None):
            for ef_search in (None, EXHAUSTIVE_EF_SEARCH):
                found = await self._search(query, k, position, lang, asked_ids, ef_search)
                for candidate in found:
                    if _norm_text(candidate.text) not in asked_texts:
                        return self._generated(candidate)
        raise NoQuestionsLeftError(
            f"no unasked bank question left for position {position!r} "
            f"({len(history)} asked in this session)"
        )

    async def _opener(self, position: str, language: str) -> SimilarQuestion | None:
        for lang in (language, None):
            try:
                return await self._questions.first_question(position, lang)
            except LookupError:
                continue
        return None

    async def _search(
        self,
        query: str,
        k: int,
        position: str,
        language: str | None,
        exclude_ids: set[int],
        ef_search: int | None,
    ) -> list[SimilarQuestion]:
        if ef_search is None:
            return await self._questions.similar(
                query, k, position=position, language=language, exclude_ids=sorted(exclude_ids)
            )
        return await self._questions.similar(
            query,
            k,
            position=position,
            language=language,
            exclude_ids=sorted(exclude_ids),
            ef_search=ef_search,
        )

    @staticmethod
    def _generated(question: SimilarQuestion) -> GeneratedQuestion:
        return GeneratedQuestion(
            text=question.text,
            question_id=question.id,
            category=question.category,
            source="bank",
        )


class GeneratedQuestionOut(BaseModel):
    """The LLM's proposal for the next question."""

    question: str = Field(description="The next interview question, one question only.")
    category: str = Field(
        description="One lower-case word: experience, design, technical, behavioral, ..."
    )
    expected_points: list[str] = Field(
        default_factory=list,
        description="3-6 ideas a good answer to the question covers, in the interview's language.",
    )


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity (the dot product for the unit vectors our embedders produce)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


class LLMQuestionGenerator:
    """LLM-written follow-up questions, de-duplicated by embedding similarity."""

    def __init__(
        self,
        chat_model: BaseChatModel,
        questions: QuestionSource,
        embedder: Embedder,
        *,
        settings: JudgeSettings | None = None,
        max_concurrency: int | None = None,
        max_retries: int | None = None,
        backoff_s: float | None = None,
        timeout_s: float | None = None,
        examples_k: int = 3,
        max_similarity: float = 0.9,
        max_attempts: int = 3,
        fallback: QuestionGenerator | None = None,
    ) -> None:
        """Configure the generator.

        Args:
            chat_model: Chat model supporting `with_structured_output`.
            questions: The bank (`QuestionRepository`): examples and the fallback.
            embedder: Embeds questions for the similarity check.
            settings: LLM_* knobs (concurrency, retries, backoff, timeout); explicit knobs
                below win; without either, the `JudgeSettings` defaults apply.
            max_concurrency: LLM requests in flight at once for this generator.
            max_retries: Retries of one LLM call (transport / invalid output).
            backoff_s: First retry delay in seconds.
            timeout_s: Limit of one LLM attempt in seconds.
            examples_k: Similar bank questions shown as examples.
            max_similarity: A proposal whose cosine similarity to an asked question exceeds
                this is rejected.
            max_attempts: Proposals tried before falling back to the bank.
            fallback: Used after `max_attempts` rejections or an LLM failure; defaults to a
                `BankQuestionGenerator` over `questions`.
        """
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 (got {max_attempts})")
        if examples_k < 0:
            raise ValueError(f"examples_k must be >= 0 (got {examples_k})")
        defaults = settings if settings is not None else JudgeSettings.model_construct()
        self._questions = questions
        self._embedder = embedder
        self._call = structured_call(
            chat_model, GeneratedQuestionOut, str(getattr(chat_model, "model_name", ""))
        )
        self._limit = ConcurrencyLimit(
            max_concurrency if max_concurrency is not None else defaults.llm_max_concurrency
        )
        self._max_retries = max_retries if max_retries is not None else defaults.llm_max_retries
        self._backoff_s = backoff_s if backoff_s is not None else defaults.llm_backoff_s
        self._timeout_s = timeout_s if timeout_s is not None else defaults.llm_timeout_s
        self._examples_k = examples_k
        self._max_similarity = max_similarity
        self._max_attempts = max_attempts
        self._fallback: QuestionGenerator = (
            fallback if fallback is not None else BankQuestionGenerator(questions)
        )

    async def next_question(
        self, *, position: str, language: str, history: Sequence[AskedTurn]
    ) -> GeneratedQuestion:
        """An LLM-written question unlike every asked one; else the fallback's.

        Raises:
            NoQuestionsLeftError: Only when the fallback is needed and has nothing left.
        """
        examples = await self._examples(position, language, history)
        asked_texts = {_norm_text(t.question) for t in history}
        asked_vectors = (
            await aembed_queries(self._embedder, [t.question for t in history]) if history else []
        )
        conversation = [ConversationTurn(t.question, t.answer) for t in history]
        rejected: list[str] = []
        for attempt in range(1, self._max_attempts + 1):
            messages = build_question_messages(
                position=position,
                language=language,
                conversation=conversation,
                examples=[BankExample(e.text, e.category) for e in examples],
                rejected=rejected,
            )
            try:
                proposal, usage, _, _ = await call_structured(
                    self._call,
                    messages,
                    limiter=self._limit.limiter(),
                    max_retries=self._max_retries,
                    backoff_s=self._backoff_s,
                    timeout_s=self._timeout_s,
                )
            except JudgeError as exc:
                logger.warning("LLM question generation failed (%s); using the bank", exc)
                return await self._fallback.next_question(
                    position=position, language=language, history=history
                )
            text = proposal.question.strip()
            logger.debug("question proposal %d: %r (%d tokens)", attempt, text, usage.total_tokens)
            if not text:
                rejected.append("(an empty question)")
                continue
            similarity = await self._max_similarity_to(text, asked_vectors)
            if _norm_text(text) in asked_texts or similarity > self._max_similarity:
                logger.info(
                    "rejected question proposal %d/%d (similarity %.3f > %.2f): %r",
                    attempt,
                    self._max_attempts,
                    similarity,
                    self._max_similarity,
                    text,
                )
                rejected.append(text)
                continue
            bank_match = next((e for e in examples if _norm_text(e.text) == _norm_text(text)), None)
            return GeneratedQuestion(
                text=text,
                question_id=bank_match.id if bank_match is not None else None,
                category=proposal.category.strip().lower() or None,
                source="llm",
                expected_points=tuple(p.strip() for p in proposal.expected_points if p.strip())[:6],
            )
        logger.info("%d question proposals rejected; using the bank", self._max_attempts)
        return await self._fallback.next_question(
            position=position, language=language, history=history
        )

    async def _examples(
        self, position: str, language: str, history: Sequence[AskedTurn]
    ) -> list[SimilarQuestion]:
        """The bank questions nearest the last answer (or the position's opener)."""
        if self._examples_k == 0:
            return []
        query = _last_answer(history)
        if query is None:
            opener = None
            for lang in (language, None):
                try:
                    opener = await self._questions.first_question(position, lang)
                    break
                except LookupError:
                    continue
            if opener is None:
                return []
            query = opener.text
        examples = await self._questions.similar(
            query, self._examples_k, position=position, language=language
        )
        if not examples:
            examples = await self._questions.similar(query, self._examples_k, position=position)
        return examples

    async def _max_similarity_to(self, text: str, asked: Sequence[Sequence[float]]) -> float:
        if not asked:
            return 0.0
        (vector,) = await aembed_queries(self._embedder, [text])
        return max(_cosine(vector, other) for other in asked)
