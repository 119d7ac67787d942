"""Choosing the judge and the question generator from settings (JUDGE=auto|llm|heuristic).

auto = the LLM when an API key or a base URL is configured, else the offline heuristic. The
choice is logged, and every evaluation records it in `details.judge`.
"""

from __future__ import annotations

import logging

from nodes.judges.heuristic.judge import HeuristicJudge
from nodes.judges.judge import Judge
from nodes.judges.llm.client import make_chat_model
from nodes.judges.llm.judge import LLMJudge
from nodes.judges.settings import JudgeKind, JudgeSettings
from nodes.question_generation import (
    BankQuestionGenerator,
    LLMQuestionGenerator,
    QuestionGenerator,
)
from storage.embeddings import Embedder
from storage.services import Storage

logger = logging.getLogger(__name__)


class JudgeConfigurationError(ValueError):
    """JUDGE=llm without an LLM endpoint configured."""


def use_llm(settings: JudgeSettings) -> bool:
    """Whether the LLM paths (judge and question generation) are selected."""
    if settings.judge is JudgeKind.LLM:
        if not settings.llm_configured:
            raise JudgeConfigurationError(
                "JUDGE=llm needs OPENAI_API_KEY or OPENAI_BASE_URL (an OpenAI-compatible endpoint)"
            )
        return True
    return settings.judge is JudgeKind.AUTO and settings.llm_configured


def make_judge(settings: JudgeSettings, embedder: Embedder, embedding_model: str) -> Judge:
    """The judge selected by settings; `embedding_model` names `embedder` in `details.judge`."""
    if use_llm(settings):
        logger.info(
            "judge: LLM (%s at %s)",
            settings.llm_model,
            settings.openai_base_url or "api.openai.com",
        )
        return LLMJudge.from_settings(
            settings, guard=HeuristicJudge(embedder, model_name=embedding_model)
        )
    judge = HeuristicJudge(embedder, model_name=embedding_model)
    logger.info("judge: heuristic (offline, embeddings: %s)", judge.info.model)
    return judge


def make_question_generator(settings: JudgeSettings, storage: Storage) -> QuestionGenerator:
    """LLM-written questions when an LLM is selected, else adaptive picks from the bank."""
    bank = BankQuestionGenerator(storage.questions)
    if use_llm(settings):
        return LLMQuestionGenerator(
            make_chat_model(settings),
            storage.questions,
            storage.embedder,
            settings=settings,
            fallback=bank,
        )
    return bank
