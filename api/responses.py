"""The error responses each route documents in OpenAPI, with realistic examples.

Every error body is `ErrorOut`; each route lists only the statuses it can return.
"""

from __future__ import annotations

from typing import Any

from api.errors import ErrorOut

_SID = "0b5c7a52-3f0e-4c1e-9d43-5f1f2b8d6a11"

#: status -> example name -> (summary, body)
EXAMPLES: dict[int, dict[str, tuple[str, dict[str, str]]]] = {
    401: {
        "missing_key": (
            "No X-API-Key header",
            {"error": "Unauthorized", "detail": "missing X-API-Key header"},
        ),
        "invalid_key": (
            "A key that is not in API_KEYS",
            {"error": "Unauthorized", "detail": "invalid X-API-Key header"},
        ),
        "candidate_token": (
            "A candidate token on a route that needs the API key",
            {
                "error": "Unauthorized",
                "detail": "a X-Candidate-Token only reads and answers its interview; this route "
                "needs X-API-Key",
            },
        ),
    },
    404: {
        "unknown_session": (
            "Unknown session, or a session of another tenant (same body)",
            {"error": "SessionNotFoundError", "detail": f"session {_SID} does not exist"},
        ),
    },
    409: {
        "ended": (
            "The session is closed",
            {
                "error": "SessionEndedError",
                "detail": f"session {_SID} has ended and cannot be changed; start a new "
                "session to retry",
            },
        ),
        "not_waiting": (
            "No question is waiting for an answer",
            {
                "error": "NoPendingQuestionError",
                "detail": f"session {_SID} is not waiting for an answer",
            },
        ),
        "conflict": (
            "A different value is already stored for the turn",
            {
                "error": "TurnConflictError",
                "detail": f"turn 2 of session {_SID} already has a different answer",
            },
        ),
        "no_questions": (
            "The bank has no question left for the position",
            {
                "error": "NoQuestionsLeftError",
                "detail": "no unused question left for position 'backend'",
            },
        ),
    },
    413: {
        "body": (
            "Body over API_MAX_BODY_BYTES",
            {
                "error": "ContentTooLarge",
                "detail": "request body of 2097152 bytes exceeds the limit of 1048576",
            },
        ),
    },
    422: {
        "field": (
            "A field is invalid (the location is in `field`)",
            {
                "error": "ValidationError",
                "detail": "must not be empty or only whitespace (got '   ')",
                "field": "body.transcript[2].answer",
            },
        ),
        "nul": (
            "Text PostgreSQL cannot store",
            {
                "error": "ValidationError",
                "detail": "must not contain NUL characters (\\x00) (got 'a\\x00b')",
                "field": "body.participant_id",
            },
        ),
        "json": (
            "The body is not standard JSON (NaN and Infinity included)",
            {
                "error": "ValidationError",
                "detail": "the body is not valid JSON: Expecting value at position 11",
                "field": "body",
            },
        ),
        "session_id": (
            "A path id that is not a UUID",
            {
                "error": "ValidationError",
                "detail": "Input should be a valid UUID, invalid character: expected "
                "an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], "
                "found `n` at 1 (got 'not-a-uuid')",
                "field": "path.session_id",
            },
        ),
        "query": (
            "A query parameter is invalid",
            {
                "error": "ValidationError",
                "detail": "Input should be 'backend', 'data_ml', 'devops', 'frontend' or "
                "'product' (got 'astronaut')",
                "field": "query.position",
            },
        ),
        "callback_url": (
            "A callback_url that cannot be honoured (no signing secret for the caller's "
            "tenant, wait=true, or not an http(s) URL)",
            {
                "error": "ValidationError",
                "detail": "needs a signing secret for tenant 'acme' on the server "
                "(CALLBACK_SECRETS=acme:<secret>) (got 'https://hooks.acme.example/tj')",
                "field": "body.callback_url",
            },
        ),
        "answer_required": (
            "No answer and no stop",
            {
                "error": "ValidationError",
                "detail": "answer is required unless stop is true (got null)",
                "field": "body.answer",
            },
        ),
    },
    431: {
        "headers": (
            "Headers over API_MAX_HEADER_BYTES",
            {
                "error": "HeadersTooLarge",
                "detail": "request headers total 52428860 bytes; the limit is 16384",
            },
        ),
    },
    500: {
        "internal": (
            "An unexpected error (logged; nothing about it is returned)",
            {"error": "InternalError", "detail": "internal error; it has been logged"},
        ),
    },
    502: {
        "judge": (
            "The LLM judge failed after its retries; the session stays open",
            {
                "error": "EvaluationIncompleteError",
                "detail": f"session {_SID} left open, 1 evaluation(s) failed: turn 2: "
                "judge returned invalid output after 4 attempts",
            },
        ),
    },
    503: {
        "database": (
            "The database cannot be reached",
            {"error": "DatabaseUnavailable", "detail": "database unavailable; retry later"},
        ),
    },
}

DESCRIPTIONS: dict[int, str] = {
    401: "No valid credentials",
    404: "No such session for this caller",
    409: "Conflicts with the session's state",
    413: "Request body too large",
    422: "Invalid request (the body, a query parameter or a path id)",
    431: "Request headers too large",
    500: "Internal error",
    502: "The LLM judge failed after its retries",
    503: "The database is unavailable",
}

#: Returned by every route: limits and failures that do not depend on the route.
COMMON = (431, 500, 503)


def submission_responses(
    *codes: int, only: dict[int, tuple[str, ...]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a submission route: the 202 of `wait=false`, then `error_responses`."""
    from api.schemas import QueuedOut  # schemas import the facade; keep this module light

    queued: dict[int | str, dict[str, Any]] = {
        202: {
            "model": QueuedOut,
            "description": "Queued for a worker (wait=false); follow GET /sessions/{id}/report",
            "content": {
                "application/json": {
                    "examples": {
                        "queued": {
                            "summary": "Stored and queued",
                            "value": {"session_id": _SID, "job_id": 42, "status": "queued"},
                        },
                        "closed": {
                            "summary": "Already closed: nothing queued",
                            "value": {"session_id": _SID, "job_id": None, "status": "completed"},
                        },
                    }
                }
            },
        }
    }
    return {**queued, **error_responses(*codes, only=only)}


def error_responses(
    *codes: int, only: dict[int, tuple[str, ...]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route returning `codes` (plus 431/500/503), each with examples.

    `only` narrows the examples of a status to the named ones.
    """
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({*codes, *COMMON}):
        names = (only or {}).get(code) or tuple(EXAMPLES[code])
        out[code] = {
            "model": ErrorOut,
            "description": DESCRIPTIONS[code],
            "content": {
                "application/json": {
                    "examples": {
                        name: {"summary": EXAMPLES[code][name][0], "value": EXAMPLES[code][name][1]}
                        for name in names
                    }
                }
            },
        }
    return out
