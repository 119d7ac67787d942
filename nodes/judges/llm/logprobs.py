"""A probability-weighted overall score from the reply's token logprobs (G-Eval style).

One sampled score is one draw from the model's belief; where the server returns the
probabilities of the alternatives at the score's token, their expectation is a finer and
steadier grade (G-Eval, Liu et al. 2023): weighted = sum(p_i * v_i) / sum(p_i) over the
alternatives whose text is an integer 0-100, p_i = exp(logprob_i).

Where it can work: servers that return logprobs for every generated token (vLLM, llama.cpp,
...), so a tool call's argument text is covered. api.openai.com returns logprobs only for a
message's text content, never for tool-call arguments: there the weighting is `unavailable`.
So it is with a score written over several tokens (tokenizers that split digits one by one):
the alternatives of the first digit alone are not scores. Every such case is recorded with
its reason, never raised and never retried: the sampled score stands.

The generated text is rebuilt from the tokens' bytes (a Korean character may be split over
several tokens), and the overall score is the `"score"` key of the shallowest JSON object
that has one: criterion scores sit deeper (inside `rubrics`), and a server that wraps the
call (`{"name": ..., "arguments": {...}}`) only adds an outer object without a score.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from nodes.judges.details import ScoreDistribution

#: `top_logprobs` requested: the most the OpenAI API accepts (0-20); vLLM's default cap.
TOP_LOGPROBS = 20

_INTEGER = re.compile(rb"\s*(\d{1,3})\s*")
#: A JSON string (escapes included) or a bracket: what the scanner steps through.
_STRUCTURE = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]]', re.DOTALL)
#: The number after a key: `: 85`.
_SCORE_VALUE = re.compile(rb"\s*:\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)")


def weigh_score(logprobs: object, sampled: float) -> ScoreDistribution:
    """The score distribution of one reply: weighted, or unavailable with the reason.

    Args:
        logprobs: The reply's `choices[0].logprobs` (None, or `{"content": [...]}` whose
            items carry `token`, `logprob`, `bytes` and `top_logprobs`).
        sampled: The overall score the tool call holds (what the model sampled).
    """

    def unavailable(reason: str) -> ScoreDistribution:
        return ScoreDistribution(status="unavailable", sampled=sampled, reason=reason)

    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    tokens = [t for t in content if isinstance(t, dict)] if isinstance(content, list) else []
    if not tokens:
        return unavailable("the endpoint returned no logprobs for the tool call")
    pieces = [_bytes(t) for t in tokens]
    text = b"".join(pieces)
    span = _score_span(text)
    if span is None:
        return unavailable("no overall score found in the text the logprobs cover")
    start, end = span
    value = text[start:end]
    if not _INTEGER.fullmatch(value):
        return unavailable(f"the score {value.decode()!r} is not written as an integer")
    if int(value) != sampled:
        return unavailable(f"the score text {value.decode()} is not the sampled {sampled:g}")
    covering = _covering(pieces, start, end)
    if len(covering) != 1:
        return unavailable(f"the score is written over {len(covering)} tokens, not one")
    token = tokens[covering[0]]
    weights = _integer_alternatives(token)
    mass = sum(weights.values())
    if not weights or mass <= 0:
        return unavailable("no integer 0-100 among the score token's alternatives")
    weighted = sum(p * v for v, p in weights.items()) / mass
    return ScoreDistribution(
        status="ok",
        sampled=sampled,
        weighted=round(weighted, 1),
        mass=round(min(mass, 1.0), 3),
    )


def _bytes(token: dict[str, Any]) -> bytes:
    """A token's bytes (its `bytes` list when given: a partial UTF-8 character's text lies)."""
    raw = token.get("bytes")
    if isinstance(raw, list):
        try:
            return bytes(raw)  # checks every item is an int 0-255
        except (TypeError, ValueError):
            pass
    text = token.get("token")
    return text.encode("utf-8") if isinstance(text, str) else b""


def _score_span(text: bytes) -> tuple[int, int] | None:
    """Byte span of the number under the shallowest object's `"score"` key (None: none/ambiguous).

    A scanner rather than `json.loads`: it needs positions, and it tolerates text around
    the JSON (a server's tool-call markup). It starts at the first `{` and steps from one
    string or bracket to the next with a regular expression (a judgement is ~1000 tokens).
    """
    first = text.find(b"{")
    if first < 0:
        return None
    found: list[tuple[int, int, int]] = []  # (depth, start, end)
    depth = 0
    for piece in _STRUCTURE.finditer(text, first):
        mark = piece[0]
        if mark in (b"{", b"["):
            depth += 1
        elif mark in (b"}", b"]"):
            depth -= 1
        elif mark == b'"score"':
            value = _SCORE_VALUE.match(text, piece.end())
            if value is not None:
                found.append((depth, value.start(1), value.end(1)))
    if not found:
        return None
    top = min(d for d, _, _ in found)
    spans = [(s, e) for d, s, e in found if d == top]
    return spans[0] if len(spans) == 1 else None


def _covering(pieces: Sequence[bytes], start: int, end: int) -> list[int]:
    """Indices of the tokens overlapping the byte span [start, end)."""
    indices: list[int] = []
    offset = 0
    for index, piece in enumerate(pieces):
        if offset < end and offset + len(piece) > start:
            indices.append(index)
        offset += len(piece)
    return indices


def _integer_alternatives(token: dict[str, Any]) -> dict[int, float]:
    """Probability per integer 0-100 among the token and its top alternatives.

    The sampled token counts too (some servers leave it out of its own top list); the same
    text listed twice counts once, while " 85" and "85" are two outcomes both meaning 85.
    """
    candidates: dict[bytes, float] = {}
    for option in (token, *(token.get("top_logprobs") or ())):
        if not isinstance(option, dict):
            continue
        logprob = option.get("logprob")
        if isinstance(logprob, bool) or not isinstance(logprob, int | float):
            continue
        if math.isfinite(logprob):
            candidates.setdefault(_bytes(option), float(logprob))
    weights: dict[int, float] = {}
    for text, logprob in candidates.items():
        match = _INTEGER.fullmatch(text)
        if match is not None and int(match[1]) <= 100:
            value = int(match[1])
            weights[value] = weights.get(value, 0.0) + math.exp(logprob)
    return weights
