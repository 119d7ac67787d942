"""The packaged question bank (`storage/data/questions.json`) and its idempotent loader."""

from __future__ import annotations

import json
from importlib import resources

from storage.questions import NewQuestion, QuestionRepository

BANK_RESOURCE = "data/questions.json"


def load_bank() -> list[NewQuestion]:
    """The bank shipped with the package: interview questions per position, Korean and English."""
    raw = json.loads(resources.files("storage").joinpath(BANK_RESOURCE).read_text("utf-8"))
    return [
        NewQuestion(
            position=item["position"],
            category=item["category"],
            language=item["language"],
            text=item["text"],
            expected_points=tuple(item["expected_points"]),
        )
        for item in raw
    ]


async def seed_questions(repository: QuestionRepository) -> int:
    """Load the packaged bank (new rows inserted, stored rows' points updated); rows inserted."""
    return await repository.add_many(load_bank())
