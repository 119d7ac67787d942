"""Emotion summaries (seed 000 §4.2): validated per answer, aggregated per session.

A platform's own vision/voice analysis sends, with an answer, an object
`{"dominant_emotion": "confidence", "emotion_scores": {"confidence": 0.85, ...},
"facial_expression_data": {...}}`. It is stored as JSONB on the turn's message and, when the
session closes, summarised onto the session (mean score per emotion, the dominant one, how
many turns had data). The judges never see it: a score must not depend on a face.

Every boundary (HTTP schema, interview facade, graph resume values, this storage layer)
applies `check_emotion`, so an invalid summary is refused before anything is written. The
vocabulary is data (`storage/data/emotions.json`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from storage.errors import InvalidEmotionError
from storage.text import text_problem

#: Largest `facial_expression_data`, in bytes of its compact UTF-8 JSON.
FACIAL_MAX_BYTES = 32_768
#: Deepest nesting of `facial_expression_data` (the object itself is level 1).
FACIAL_MAX_DEPTH = 3
#: Keys of an emotion summary sent with an answer.
EMOTION_KEYS = ("dominant_emotion", "emotion_scores", "facial_expression_data")
#: Decimals kept in a session's mean scores.
MEAN_DECIMALS = 4


@cache
def emotion_vocabulary() -> tuple[str, ...]:
    """The known emotion names, in the data file's order (which also breaks ties)."""
    path = resources.files("storage").joinpath("data", "emotions.json")
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return tuple(data["emotions"])


def _fail(field: str, problem: str) -> InvalidEmotionError:
    return InvalidEmotionError(field, problem)


def _check_score(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(field, f"must be a number from 0 to 1, got {type(value).__name__}")
    score = float(value)
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise _fail(field, f"must be a number from 0 to 1, got {value!r}")
    return score


def _check_json(field: str, value: object, depth: int) -> None:
    """`value` is plain JSON PostgreSQL can store, nested at most `FACIAL_MAX_DEPTH` deep."""
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(field, "must be a finite number (no NaN or Infinity)")
        return
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise _fail(field, problem)
        return
    if isinstance(value, list | tuple | Mapping) and depth > FACIAL_MAX_DEPTH:
        raise _fail(field, f"is nested too deeply (at most {FACIAL_MAX_DEPTH} levels)")
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(f"{field}[{index}]", item, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(field, f"keys must be strings, got {type(key).__name__}")
            problem = text_problem(key)
            if problem is not None:
                raise _fail(f"{field} (a key)", problem)
            _check_json(f"{field}.{key}", item, depth + 1)
        return
    raise _fail(
        field,
        f"must be JSON (object, array, string, number, boolean, null), got {type(value).__name__}",
    )


def check_facial_data(value: object, field: str = "facial_expression_data") -> dict[str, Any]:
    """`value` if it is a JSON object within `FACIAL_MAX_DEPTH` and `FACIAL_MAX_BYTES`."""
    if not isinstance(value, Mapping):
        raise _fail(field, f"must be a JSON object, got {type(value).__name__}")
    _check_json(field, value, 1)
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > FACIAL_MAX_BYTES:
        raise _fail(field, f"must be at most {FACIAL_MAX_BYTES} bytes of JSON, got {size}")
    return dict(value)


def check_emotion(value: object, field: str = "emotion") -> dict[str, Any]:
    """The emotion summary of one answer, normalised (scores as floats), or a typed error.

    Rules: an object with `emotion_scores` (1+ known emotions, each a number in [0, 1]),
    `dominant_emotion` (one of the scored emotions) and optionally `facial_expression_data`
    (a JSON object, bounded); nothing else.

    Raises:
        InvalidEmotionError: naming the field, e.g. `emotion.emotion_scores.joy`.
    """
    if not isinstance(value, Mapping):
        raise _fail(
            field,
            f"must be an object {{dominant_emotion, emotion_scores}}, got {type(value).__name__}",
        )
    unknown = sorted(str(key) for key in value if key not in EMOTION_KEYS)
    if unknown:
        raise _fail(f"{field}.{unknown[0]}", f"is not a known key (use {', '.join(EMOTION_KEYS)})")
    known = emotion_vocabulary()
    scores_field = f"{field}.emotion_scores"
    raw_scores = value.get("emotion_scores")
    if not isinstance(raw_scores, Mapping) or not raw_scores:
        raise _fail(scores_field, "is required: an object of emotion -> score in [0, 1]")
    scores: dict[str, float] = {}
    for name, score in raw_scores.items():
        if not isinstance(name, str) or name not in known:
            shown = name if isinstance(name, str) and text_problem(name) is None else "?"
            raise _fail(
                f"{scores_field}.{shown[:40]}",
                f"is not a known emotion (one of {', '.join(known)})",
            )
        scores[name] = _check_score(f"{scores_field}.{name}", score)
    dominant = value.get("dominant_emotion")
    dominant_field = f"{field}.dominant_emotion"
    if not isinstance(dominant, str):
        raise _fail(dominant_field, "is required: the name of one of the scored emotions")
    if dominant not in scores:
        raise _fail(dominant_field, f"must be one of the scored emotions ({', '.join(scores)})")
    summary: dict[str, Any] = {"dominant_emotion": dominant, "emotion_scores": scores}
    facial = value.get("facial_expression_data")
    if facial is not None:
        summary["facial_expression_data"] = check_facial_data(
            facial, f"{field}.facial_expression_data"
        )
    return summary


def summarise(per_turn: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """A session's emotion summary from the summaries of its answered turns (None: no data).

    `emotion_scores` holds the mean score of each emotion over the turns with data (a turn
    that does not score an emotion counts 0 for it); `dominant_emotion` is the emotion with
    the highest mean (ties: the vocabulary's order); `turns_with_data` counts the turns.
    """
    if not per_turn:
        return None
    order = {name: index for index, name in enumerate(emotion_vocabulary())}
    names = sorted(
        {name for turn in per_turn for name in turn["emotion_scores"]},
        key=lambda name: order.get(name, len(order)),
    )
    means = {
        name: round(
            math.fsum(float(t["emotion_scores"].get(name, 0.0)) for t in per_turn) / len(per_turn),
            MEAN_DECIMALS,
        )
        for name in names
    }
    dominant = max(names, key=lambda name: (means[name], -order.get(name, len(order))))
    return {"dominant_emotion": dominant, "emotion_scores": means, "turns_with_data": len(per_turn)}
