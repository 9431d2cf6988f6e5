"""Content hashes: duplicates are detected by what an item says, not by its id."""
import hashlib
import unicodedata

from limrank_app.text import text_check


def text_normalize(text: str) -> str:
    """NFC, whitespace collapsed. Raises UnsafeTextError (a ValueError) for text that cannot be stored or hashed
    (NUL, a lone surrogate): callers refuse it with a 400 naming the field, never a 500."""
    text = text or ""
    if text.isascii():  # the common case, and a quick one: NFC leaves ASCII as it is and it holds no surrogate
        if "\x00" in text:
            text_check(text)  # raises, with the message every entry point gives
        return " ".join(text.split())
    return " ".join(unicodedata.normalize("NFC", text_check(text)).split())


def text_hash(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(text_normalize(str(part)).encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()


def example_content_hash(*, query: str, passage: str, label: bool) -> str:
    return text_hash(query, passage, "true" if label else "false")
