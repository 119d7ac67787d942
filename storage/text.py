"""What PostgreSQL text can hold: the one check every boundary and write path shares.

PostgreSQL `text` cannot store NUL (asyncpg raises `CharacterNotInRepertoireError`) and UTF-8
cannot encode a lone surrogate (U+D800 alone, which JSON allows). Both are refused before any
write, by the HTTP schemas, the interview facade and the storage services alike.
"""

from __future__ import annotations

from storage.errors import InvalidTextError


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as PostgreSQL text, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters (\\x00)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogate code points)"
    return None


def check_text(field: str, value: str) -> str:
    """`value`, unless PostgreSQL cannot store it: `InvalidTextError` naming `field`."""
    problem = text_problem(value)
    if problem is not None:
        raise InvalidTextError(f"{field} {problem}")
    return value
