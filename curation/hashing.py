"""Content hashes: duplicates are detected by what an item says, not by its id."""
import hashlib
import unicodedata


def text_normalize(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text or "").split())


def text_hash(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(text_normalize(str(part)).encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()


def example_content_hash(*, query: str, passage: str, label: bool) -> str:
    return text_hash(query, passage, "true" if label else "false")
