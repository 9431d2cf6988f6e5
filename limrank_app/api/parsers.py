"""The REST API's JSON parser: bounded depth and numbers, and only text the studio can store.
Every failure is a 400 naming where in the body it is (a JSON path such as `$.edits.reason`)."""
from __future__ import annotations

import json
import math

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

from limrank_app.text import text_problem

# 64-bit signed: the widest integer column; anything larger would overflow the database, not just the field.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


class _BodyError(ValueError):
    def __init__(self, message: str, *, path: str = "$"):
        super().__init__(f"{path}: {message}" if path != "$" else message)
        self.path = path


class _OutOfRange(int):
    """An integer past 64 bits, kept (as 0) until the body walk can say where it is."""

    def __new__(cls, text: str):
        obj = super().__new__(cls, 0)
        obj.text = text
        return obj


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


def _parse_int(text: str) -> int:
    # Checked on the digits before int(): a 4,000-digit number is refused without converting it.
    if len(text.lstrip("-")) > 19 or not _INT_MIN <= int(text) <= _INT_MAX:
        return _OutOfRange(text)
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BodyError(f"number {text[:24]} is too large")
    return value


def _parse_constant(name: str):
    raise _BodyError(f"{name} is not valid JSON")


def json_body_check(value, *, max_depth: int) -> None:
    """Walk a parsed body without recursion: depth bounded, every string (keys too) acceptable text."""
    stack = [(value, "$", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, _OutOfRange):
            text = node.text
            raise _BodyError(f"integer {text[:24]}{'…' if len(text) > 24 else ''} is outside the 64-bit range", path=path)
        if isinstance(node, str):
            problem = text_problem(node)
            if problem:
                raise _BodyError(problem, path=path)
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > max_depth:
            raise _BodyError(f"nested deeper than {max_depth} levels", path=path)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            if isinstance(key, str):
                problem = text_problem(key)
                if problem:
                    raise _BodyError(f"a key {problem}", path=path)
                child_path = f"{path}.{key[:40]}"
            else:
                child_path = f"{path}[{key}]"
            stack.append((child, child_path, depth + 1))


class HardenedJSONParser(JSONParser):
    """DRF's JSONParser, refusing with 400 what would otherwise fail later as a 500: nesting past
    LIMRANK_JSON_MAX_DEPTH (Python's decoder recurses), integers outside 64 bits, infinite numbers, NUL and lone
    surrogates in strings."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            # Read at most one byte past the limit: a chunked body (no Content-Length) is never read whole.
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            raw = stream.read(limit + 1) if stream is not None else b""
            if len(raw) > limit:
                raise PayloadTooLarge(f"the JSON body is larger than {limit:,} bytes")
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - the body is not valid {encoding} (byte {exc.start})") from None
        try:
            data = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
            json_body_check(data, max_depth=settings.LIMRANK_JSON_MAX_DEPTH)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {settings.LIMRANK_JSON_MAX_DEPTH} levels") from None
        except _BodyError as exc:
            message = f"JSON parse error - {exc}"
            if exc.path == "$":
                raise ParseError(message) from None
            # Keyed by the field (`edits.reason`) as DRF's validation errors are, `detail` kept for clients reading it.
            raise ParseError({exc.path.removeprefix("$."): [message], "detail": message}) from None
        except ValueError as exc:  # json.JSONDecodeError, and int() past Python's digit limit
            raise ParseError(f"JSON parse error - {exc}") from None
        return data
