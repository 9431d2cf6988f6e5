"""The one rule for text the studio accepts: no NUL (PostgreSQL text cannot hold it) and no lone surrogate
(it cannot be encoded as UTF-8, so it can be neither hashed nor stored). Used by the JSON parser, the query-string
guard, content hashing and the import services, so every entry point refuses the same things."""
from __future__ import annotations


class UnsafeTextError(ValueError):
    """Text the studio refuses; the message says what is wrong (callers add where)."""


def text_problem(text: str) -> str | None:
    """What is wrong with `text` (None when it is acceptable)."""
    if "\x00" in text:
        return "contains a NUL character (U+0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate (U+{ord(text[exc.start]):04X}) that is not valid Unicode text"
    return None


def text_check(text: str) -> str:
    problem = text_problem(text)
    if problem:
        raise UnsafeTextError(problem)
    return text
