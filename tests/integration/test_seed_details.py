"""Seed-shaped TURN_EVAL details written by a real judge, read with the seeds' own SQL.

Every TURN_EVAL the graph stores carries seed 000 §4.1's feedback, keywords, strengths and
improvements and seed 002's intent and intent_types; seed 002's per-turn query (only the
schema prefix and the id substituted) returns them, in English and in Korean interviews.
"""

from __future__ import annotations

import json
import re

import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from sqlalchemy import text

from api.interviews import InterviewService, TranscriptSubmission
from graph.graph import build_graph
from graph.services import Services
from nodes.judges.intents import intent_vocabulary
from storage.services import Storage
from tests.integration.test_seed_queries import SEED_SCHEMA, TURN_SCORES, load_queries, substitute

pytestmark = pytest.mark.integration

TRANSCRIPTS = {
    "en": [
        {
            "question": "How would you make a payment webhook idempotent?",
            "answer": "At my last job we stored the provider's event id under a unique index and "
            "used INSERT ... ON CONFLICT DO NOTHING in the same transaction as the "
            "ledger write, because retries then become no-ops; duplicates fell from "
            "0.3% to zero over 2M events.",
        },
        {"question": "How do you find a slow SQL query in production?", "answer": "I don't know."},
    ],
    "ko": [
        {
            "question": "결제 웹훅을 멱등하게 만들려면 어떻게 하시겠습니까?",
            "answer": "이전 회사에서 이벤트 ID에 유니크 인덱스를 두고 같은 트랜잭션에서 INSERT ON "
            "CONFLICT를 사용했습니다. 재시도가 무해해지기 때문에 중복 결제가 0.3%에서 0으로 "
            "줄었습니다.",
        },
        {
            "question": "운영 환경에서 느린 SQL 쿼리를 어떻게 찾습니까?",
            "answer": "잘 모르겠습니다.",
        },
    ],
}
HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.fixture
def interviews(offline_services: Services, checkpointer: AsyncPostgresSaver) -> InterviewService:
    return InterviewService(build_graph(checkpointer), offline_services)


@pytest.mark.parametrize("language", ["en", "ko"])
async def test_stored_turn_evals_are_seed_shaped(
    interviews: InterviewService, storage: Storage, language: str
) -> None:
    report = await interviews.submit_transcript(
        TranscriptSubmission(
            participant_id=f"p-seed-{language}",
            position="backend",
            language=language,
            transcript=TRANSCRIPTS[language],
        )
    )
    sql = substitute(
        load_queries()[TURN_SCORES].replace(f"{SEED_SCHEMA}.", ""),
        session_id=str(report.session_id),
    )
    async with storage.db.engine.connect() as conn:
        rows = (await conn.execute(text(sql))).mappings().all()
        extra = (
            (
                await conn.execute(
                    text(
                        "SELECT turn, details->>'feedback' AS feedback,"
                        " details->'keywords' AS keywords, details->'strengths' AS strengths,"
                        " details->'improvements' AS improvements,"
                        " details->>'intent' AS intent FROM prompt_evaluations"
                        " WHERE session_id = :id AND evaluation_type = 'TURN_EVAL' ORDER BY turn"
                    ),
                    {"id": report.session_id},
                )
            )
            .mappings()
            .all()
        )
    assert [row["turn"] for row in rows] == [1, 2]
    vocabulary = set(intent_vocabulary())
    intent_types = [
        json.loads(row["intent_types"])
        if isinstance(row["intent_types"], str)
        else row["intent_types"]
        for row in rows
    ]
    assert all(isinstance(types, list) and set(types) <= vocabulary for types in intent_types)
    assert "explained" in intent_types[0] and intent_types[1] == ["declined"]
    for row in extra:
        assert row["feedback"] and row["intent"]
        for key in ("keywords", "strengths", "improvements"):
            assert isinstance(row[key], list), key
    if language == "ko":
        assert all(HANGUL.search(row["analysis"]) for row in rows)
        assert all(HANGUL.search(row["feedback"]) for row in extra)
