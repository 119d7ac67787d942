"""Emotion summaries (seed 000 §4.2): the rules every boundary shares, and the session means."""

from __future__ import annotations

import dataclasses
import math

import pytest

from api.validation import InvalidRequestError, check_answer, check_transcript
from nodes.intake_answer import InvalidAnswerError, parse_resume
from nodes.judges.judge import FlowCase, TurnCase
from storage.emotions import (
    FACIAL_MAX_BYTES,
    FACIAL_MAX_DEPTH,
    check_emotion,
    emotion_vocabulary,
    summarise,
)
from storage.errors import InvalidEmotionError

SEED_EXAMPLE = {
    "dominant_emotion": "confidence",
    "emotion_scores": {"confidence": 0.85, "nervousness": 0.10, "excitement": 0.05},
    "facial_expression_data": {"au": {"AU06": 0.4, "AU12": 0.7}, "frames": [[0, 1.5], [1, 2]]},
}


def test_the_seed_example_is_accepted_and_normalised() -> None:
    summary = check_emotion({**SEED_EXAMPLE, "emotion_scores": {"confidence": 1, "calm": 0}})
    assert summary["emotion_scores"] == {"confidence": 1.0, "calm": 0.0}
    assert all(isinstance(v, float) for v in summary["emotion_scores"].values())
    assert check_emotion(SEED_EXAMPLE) == SEED_EXAMPLE
    assert {"confidence", "nervousness", "excitement", "joy"} <= set(emotion_vocabulary())


def _deep(levels: int) -> dict[str, object]:
    value: object = 1
    for _ in range(levels - 1):
        value = {"x": value}
    return {"x": value} if levels > 1 else {"x": 1}


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("happy", "emotion"),
        ({"emotion_scores": {"joy": 0.5}}, "emotion.dominant_emotion"),
        ({"dominant_emotion": "joy"}, "emotion.emotion_scores"),
        ({"dominant_emotion": "joy", "emotion_scores": {}}, "emotion.emotion_scores"),
        ({"dominant_emotion": "joy", "emotion_scores": {"joy": 1.2}}, "emotion.emotion_scores.joy"),
        (
            {"dominant_emotion": "joy", "emotion_scores": {"joy": -0.1}},
            "emotion.emotion_scores.joy",
        ),
        (
            {"dominant_emotion": "joy", "emotion_scores": {"joy": math.nan}},
            "emotion.emotion_scores.joy",
        ),
        (
            {"dominant_emotion": "joy", "emotion_scores": {"joy": math.inf}},
            "emotion.emotion_scores.joy",
        ),
        (
            {"dominant_emotion": "joy", "emotion_scores": {"joy": True}},
            "emotion.emotion_scores.joy",
        ),
        (
            {"dominant_emotion": "joy", "emotion_scores": {"joy": "0.5"}},
            "emotion.emotion_scores.joy",
        ),
        (
            {"dominant_emotion": "happiness", "emotion_scores": {"happiness": 0.5}},
            "emotion.emotion_scores.happiness",
        ),
        ({"dominant_emotion": "anger", "emotion_scores": {"joy": 0.9}}, "emotion.dominant_emotion"),
        ({"dominant_emotion": "joy", "emotion_scores": {"joy": 0.9}, "mood": "x"}, "emotion.mood"),
        (
            {
                "dominant_emotion": "joy",
                "emotion_scores": {"joy": 0.9},
                "facial_expression_data": [1, 2],
            },
            "emotion.facial_expression_data",
        ),
        (
            {
                "dominant_emotion": "joy",
                "emotion_scores": {"joy": 0.9},
                "facial_expression_data": {"note": "a\x00b"},
            },
            "emotion.facial_expression_data.note",
        ),
        (
            {
                "dominant_emotion": "joy",
                "emotion_scores": {"joy": 0.9},
                "facial_expression_data": {"v": [0.1, math.nan]},
            },
            "emotion.facial_expression_data.v[1]",
        ),
        (
            {
                "dominant_emotion": "joy",
                "emotion_scores": {"joy": 0.9},
                "facial_expression_data": {"s": {1, 2}},
            },
            "emotion.facial_expression_data.s",
        ),
        (
            {
                "dominant_emotion": "joy",
                "emotion_scores": {"joy": 0.9},
                "facial_expression_data": {"\ud800": 1},
            },
            "emotion.facial_expression_data (a key)",
        ),
        (
            {
                "dominant_emotion": "joy",
                "emotion_scores": {"joy": 0.9},
                "facial_expression_data": _deep(FACIAL_MAX_DEPTH + 1),
            },
            "emotion.facial_expression_data" + ".x" * FACIAL_MAX_DEPTH,
        ),
        (
            {
                "dominant_emotion": "joy",
                "emotion_scores": {"joy": 0.9},
                "facial_expression_data": {"blob": "x" * FACIAL_MAX_BYTES},
            },
            "emotion.facial_expression_data",
        ),
    ],
)
def test_invalid_summaries_are_refused_naming_the_field(value: object, field: str) -> None:
    with pytest.raises(InvalidEmotionError) as error:
        check_emotion(value)
    assert error.value.field == field, str(error.value)


def test_limits_are_inclusive() -> None:
    deepest = {
        "dominant_emotion": "joy",
        "emotion_scores": {"joy": 0.9},
        "facial_expression_data": _deep(FACIAL_MAX_DEPTH),
    }
    assert check_emotion(deepest) == deepest
    overhead = len('{"blob":""}')
    biggest = {
        "dominant_emotion": "joy",
        "emotion_scores": {"joy": 0.9},
        "facial_expression_data": {"blob": "x" * (FACIAL_MAX_BYTES - overhead)},
    }
    assert check_emotion(biggest) == biggest


def test_the_facade_and_the_graph_apply_the_same_rules() -> None:
    bad = {"dominant_emotion": "joy", "emotion_scores": {"joy": 2}}
    with pytest.raises(InvalidRequestError) as error:
        check_answer("an answer", False, bad)
    assert error.value.field == "emotion.emotion_scores.joy"
    with pytest.raises(InvalidRequestError) as error:
        check_answer(None, True, SEED_EXAMPLE)
    assert error.value.field == "emotion"
    with pytest.raises(InvalidRequestError) as error:
        check_transcript(
            [{"question": "q?", "answer": "a"}, {"question": "q?", "answer": "a", "emotion": bad}]
        )
    assert error.value.field == "transcript[1].emotion.emotion_scores.joy"
    assert (
        check_transcript([{"question": "q?", "answer": "a", "emotion": SEED_EXAMPLE}])[0]["emotion"]
        == SEED_EXAMPLE
    )
    with pytest.raises(InvalidEmotionError):
        parse_resume({"answer": "x", "emotion": bad})
    with pytest.raises(InvalidAnswerError):
        parse_resume({"stop": True, "emotion": SEED_EXAMPLE})
    assert parse_resume({"answer": "x", "emotion": SEED_EXAMPLE}).emotion == SEED_EXAMPLE


def test_the_judges_input_cannot_carry_an_emotion() -> None:
    # Structural: what a judge receives has no place for an emotion summary.
    for case_type in (TurnCase, FlowCase):
        names = {f.name for f in dataclasses.fields(case_type)}
        assert not any("emotion" in name or "facial" in name for name in names), names


def test_session_means_dominant_and_count() -> None:
    turns = [
        {"dominant_emotion": "confidence", "emotion_scores": {"confidence": 0.8, "calm": 0.2}},
        {
            "dominant_emotion": "nervousness",
            "emotion_scores": {"nervousness": 0.9, "confidence": 0.1},
        },
    ]
    assert summarise(turns) == {
        "dominant_emotion": "confidence",
        # a turn that does not score an emotion counts 0 for it
        "emotion_scores": {"confidence": 0.45, "nervousness": 0.45, "calm": 0.1},
        "turns_with_data": 2,
    }  # the tie between confidence and nervousness goes to the vocabulary's order
    assert summarise([]) is None
