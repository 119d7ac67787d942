"""Labelled answers: one JSON object per line, validated strictly before any judge runs.

A label is what a human rater decided about one answer to one question:

    {"id": "be-en-01-a", "position": "backend", "language": "en",
     "question": "...", "answer": "...", "score": 85, "band": "excellent",
     "rater": "turnjudge-team", "note": "why this score"}

`position`, `language`, `question`, `answer` and `score` (a number in [0, 100]) are
required; `id` (unique; `line-N` when absent), `band` (must agree with the score, see
`bands`), `rater` and `note` are optional. Unknown fields are refused, so a typo such as
`"scroe"` is an error instead of a silently missing label. Any fault stops the load with a
`LabelError` naming the file, the line and the field: calibrating on a partly read file
would report statistics about data nobody chose.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from api.calibration.bands import BAND_NAMES, band_name, band_range
from nodes.judges.rubrics import available_positions

#: Labels a file may hold (a bound on memory and on judge calls, not on statistics).
MAX_LABELS = 10_000


class LabelError(ValueError):
    """A labels file that cannot be used; names the line (1-based) and field when known."""

    def __init__(
        self, path: Path, message: str, *, line: int | None = None, field: str | None = None
    ) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        what = f" field {field!r}:" if field else ""
        super().__init__(f"{where}:{what} {message}")
        self.line = line
        self.field = field


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    return value


class _LabelIn(BaseModel):
    """The wire shape of one line (strict: no coercion of strings to numbers or back)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str | None = Field(default=None, min_length=1, max_length=200)
    position: str = Field(min_length=1)
    language: Literal["en", "ko"]
    question: str = Field(min_length=1, max_length=4000)
    answer: str = Field(max_length=20000)
    score: float = Field(ge=0, le=100, allow_inf_nan=False)
    band: str | None = None
    rater: str | None = Field(default=None, min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=2000)

    @field_validator("id", "question", "answer", "rater", "note")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else _no_nul(value)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is blank")
        return value

    @field_validator("position")
    @classmethod
    def _known_position(cls, value: str) -> str:
        known = available_positions()
        if value not in known:
            raise ValueError(f"unknown position {value!r}; known: {', '.join(known)}")
        return value

    @field_validator("band")
    @classmethod
    def _known_band(cls, value: str | None) -> str | None:
        if value is not None and value not in BAND_NAMES:
            raise ValueError(f"unknown band {value!r}; bands: {', '.join(BAND_NAMES)}")
        return value


@dataclass(frozen=True)
class Label:
    """One validated human label."""

    id: str
    position: str
    language: str
    question: str
    answer: str
    score: float
    band: str
    rater: str | None = None
    note: str | None = None


def _from_line(path: Path, number: int, raw: object) -> Label:
    try:
        item = _LabelIn.model_validate(raw)
    except ValidationError as exc:
        # An unknown field first: "scroe" explains the missing "score" better than itself.
        error = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        field = str(error["loc"][0]) if error["loc"] else None
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (allowed: " + ", ".join(_LabelIn.model_fields) + ")"
        raise LabelError(path, message, line=number, field=field) from None
    score = item.score
    band = band_name(score)
    if item.band is not None and item.band != band:
        low, high = band_range(item.band)
        raise LabelError(
            path,
            f"band {item.band!r} ({low:g}-{high:g}) disagrees with score {score:g} (band {band!r})",
            line=number,
            field="band",
        )
    return Label(
        id=item.id or f"line-{number}",
        position=item.position,
        language=item.language,
        question=item.question,
        answer=item.answer,
        score=score,
        band=band,
        rater=item.rater,
        note=item.note,
    )


def parse_labels(path: Path, lines: Sequence[str]) -> list[Label]:
    """Labels from JSONL text (blank lines skipped); `path` only names the source."""
    labels: list[Label] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelError(path, f"not valid JSON ({exc.msg})", line=number) from None
        if not isinstance(raw, dict):
            raise LabelError(path, "a label must be a JSON object", line=number)
        label = _from_line(path, number, raw)
        if label.id in seen:
            raise LabelError(
                path,
                f"duplicate id {label.id!r} (first on line {seen[label.id]})",
                line=number,
                field="id",
            )
        seen[label.id] = number
        labels.append(label)
        if len(labels) > MAX_LABELS:
            raise LabelError(path, f"more than {MAX_LABELS} labels", line=number)
    if not labels:
        raise LabelError(path, "no labels (one JSON object per line expected)")
    return labels


def load_labels(path: Path) -> list[Label]:
    """The labels of a JSONL file (UTF-8), all valid, or a `LabelError`."""
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise LabelError(path, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise LabelError(path, f"cannot be read ({exc.strerror or exc})") from None
    return parse_labels(path, text.splitlines())
