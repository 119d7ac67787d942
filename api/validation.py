"""Request validation of the interview facade, done before any graph run or write.

The HTTP schemas check shapes too, but the facade is also called by the CLI and by Python
code, and a value refused *after* it reached the graph can stay pending in a checkpoint (an
interrupt resumed with it fails the same way forever). So every request is checked here in
full (types, bounds, text PostgreSQL can store, known position and language, transcript
shape) and a rejected request changes nothing: no session row, no message, no checkpoint.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from graph.state import TranscriptItem
from nodes.intake_answer import MAX_ANSWER_CHARS
from nodes.judges.rubrics import available_positions
from storage.emotions import check_emotion as check_emotion_summary
from storage.errors import InvalidEmotionError
from storage.text import text_problem

#: Languages the judges and the question bank speak.
LANGUAGES = ("en", "ko")
MAX_ID_CHARS = 200
MAX_QUESTION_CHARS = 5_000
MAX_TURNS = 30
MAX_TRANSCRIPT_TURNS = 100
MAX_RUN_CHARS = 200
MAX_TAGS = 20
MAX_TAG_KEY_CHARS = 64
MAX_TAG_VALUE_CHARS = 200


class InvalidRequestError(ValueError):
    """A request the facade refuses before touching anything; `field` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field


def check_str(
    field: str, value: object, *, max_chars: int, min_chars: int = 1, blank_ok: bool = False
) -> str:
    """`value` if it is storable text within bounds; `InvalidRequestError` otherwise."""
    if not isinstance(value, str):
        raise InvalidRequestError(field, f"must be a string, got {type(value).__name__}")
    problem = text_problem(value)
    if problem is not None:
        raise InvalidRequestError(field, problem)
    if len(value) < min_chars:
        raise InvalidRequestError(field, f"must have at least {min_chars} character(s)")
    if len(value) > max_chars:
        raise InvalidRequestError(field, f"must have at most {max_chars} characters")
    if not blank_ok and not value.strip():
        raise InvalidRequestError(field, "must not be blank")
    return value


def check_session_id(value: object) -> uuid.UUID:
    """A session id as a UUID."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and text_problem(value) is None:
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidRequestError("session_id", "must be a UUID")


def check_flag(field: str, value: object) -> bool:
    """A real boolean (not 1, not "yes")."""
    if not isinstance(value, bool):
        raise InvalidRequestError(field, f"must be a boolean, got {type(value).__name__}")
    return value


def check_profile(
    participant_id: object, position: object, language: object, exam_id: object
) -> None:
    """Who is interviewed, for which position, in which language."""
    check_str("participant_id", participant_id, max_chars=MAX_ID_CHARS)
    if exam_id is not None:
        check_str("exam_id", exam_id, max_chars=MAX_ID_CHARS)
    check_str("position", position, max_chars=MAX_ID_CHARS)
    known = available_positions()
    if position not in known:
        raise InvalidRequestError("position", f"must be one of {', '.join(known)}")
    if language not in LANGUAGES:
        raise InvalidRequestError("language", f"must be one of {', '.join(LANGUAGES)}")


def check_run(run: object, tags: object) -> dict[str, Any]:
    """A run name and tags, as the session metadata that stores them (`{}` when both unset).

    Runs group sessions for exports and notebooks (`turnjudge export --run NAME`); tags are
    free string labels (`cohort=2026-q4`).
    """
    metadata: dict[str, Any] = {}
    if run is not None:
        metadata["run"] = check_str("run", run, max_chars=MAX_RUN_CHARS)
    if tags is None:
        return metadata
    if not isinstance(tags, dict):
        raise InvalidRequestError("tags", "must be an object of string labels")
    if len(tags) > MAX_TAGS:
        raise InvalidRequestError("tags", f"must have at most {MAX_TAGS} entries")
    for key, value in tags.items():
        check_str("tags (a key)", key, max_chars=MAX_TAG_KEY_CHARS)
        check_str(f"tags.{key}", value, max_chars=MAX_TAG_VALUE_CHARS, blank_ok=True)
    if tags:
        metadata["tags"] = dict(tags)
    return metadata


def check_max_turns(value: object) -> int:
    """An integer number of turns in [1, MAX_TURNS] (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError("max_turns", f"must be an integer, got {type(value).__name__}")
    if not 1 <= value <= MAX_TURNS:
        raise InvalidRequestError("max_turns", f"must be between 1 and {MAX_TURNS}")
    return value


def check_emotion(field: str, value: object) -> dict[str, Any] | None:
    """An optional emotion summary (seed 000 §4.2), normalised; None when absent.

    The rules are storage's (`storage.emotions.check_emotion`: known emotions only, scores
    in [0, 1], the dominant emotion among the scored ones, bounded JSON facial data); a
    refusal names the exact field, e.g. `emotion.emotion_scores.joy`.
    """
    if value is None:
        return None
    try:
        return check_emotion_summary(value, field)
    except InvalidEmotionError as exc:
        raise InvalidRequestError(exc.field, str(exc).removeprefix(exc.field).strip()) from exc


def check_answer(
    answer: object, stop: object, emotion: object = None
) -> tuple[str | None, bool, dict[str, Any] | None]:
    """An interview answer (or none with stop=true) and its optional emotion summary."""
    stop = check_flag("stop", stop)
    summary = check_emotion("emotion", emotion)
    if answer is None:
        if not stop:
            raise InvalidRequestError("answer", "is required unless stop is true")
        if summary is not None:
            raise InvalidRequestError("emotion", "describes an answer: send it with the answer")
        return None, stop, None
    return check_str("answer", answer, max_chars=MAX_ANSWER_CHARS), stop, summary


def check_transcript(transcript: object) -> list[TranscriptItem]:
    """A complete transcript: 1..MAX_TRANSCRIPT_TURNS turns of {question, answer, emotion?}."""
    if isinstance(transcript, str | bytes) or not isinstance(transcript, Sequence):
        raise InvalidRequestError("transcript", "must be a list of {question, answer}")
    if not 1 <= len(transcript) <= MAX_TRANSCRIPT_TURNS:
        raise InvalidRequestError(
            "transcript", f"must have between 1 and {MAX_TRANSCRIPT_TURNS} turns"
        )
    items: list[TranscriptItem] = []
    for index, item in enumerate(transcript):
        where = f"transcript[{index}]"
        if not isinstance(item, dict):
            raise InvalidRequestError(where, "must be an object {question, answer}")
        extra = set(item) - {"question", "answer", "emotion"}
        if extra:
            raise InvalidRequestError(where, f"has unknown keys {sorted(map(str, extra))}")
        question: Any = item.get("question")
        answer: Any = item.get("answer")
        check_str(f"{where}.question", question, max_chars=MAX_QUESTION_CHARS)
        check_str(f"{where}.answer", answer, max_chars=MAX_ANSWER_CHARS)
        item_out = TranscriptItem(question=question, answer=answer)
        emotion = check_emotion(f"{where}.emotion", item.get("emotion"))
        if emotion is not None:
            item_out["emotion"] = emotion
        items.append(item_out)
    return items


MAX_URL_CHARS = 2_000


def check_callback_url(value: object) -> str | None:
    """An absolute http(s) URL with a host, or None (no callback).

    Other schemes (file:, ftp:, javascript:...) are refused: a worker POSTs to this URL.
    """
    if value is None:
        return None
    url = check_str("callback_url", value, max_chars=MAX_URL_CHARS)
    parsed = urlsplit(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise InvalidRequestError("callback_url", "must be an absolute http:// or https:// URL")
    if any(char.isspace() for char in url):
        raise InvalidRequestError("callback_url", "must not contain whitespace")
    return url
