"""Imports of seed queries, personas and existing (Rank1-format) examples: one code path for the
management commands, the REST API and the UI.

Every import is all-or-nothing: a bad line rejects the file with an `ImportValidationError` naming the line
and the field, and nothing is written. Seeds and personas are parsed and validated whole first, then written in
one transaction; examples (the large files) are streamed: read, validated, hashed and written a chunk at a time
inside one transaction, which a bad line rolls back, so memory stays flat in the file's size. Duplicates, by content hash, against the database and within the file, are counted
and skipped.

Public functions (all keyword-only; `file` is bytes, a binary file-like object, or a path):

    seeds_import(*, file, filename, source="", progress=None) -> ImportResult
    personas_import(*, file, filename, source="personahub", progress=None) -> ImportResult
    examples_import(*, file, filename, origin="rank1", dataset=None, status=None, progress=None) -> ImportResult
    examples_import_authors(*, format, file=None, filename="", online=False, dataset=None, status=None, progress=None) -> ImportResult

`progress(done_lines, total_lines)` is called as lines are parsed (the commands hang tqdm on it).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Iterable
from typing import IO, Callable, Iterator

from django.db import transaction

from curation.protocol import INSTRUCTION as RANK1_INSTRUCTION
from curation.hashing import example_content_hash, text_hash
from limrank_app.text import text_problem
from curation.models import Dataset, Example, GeneratedQuery, Passage, Persona, SeedQuery
from curation.services.bulk import bulk_insert, bulk_statistics_refresh

# Limits that keep a broken or hostile file from filling the database. Fields have their own limits (so the
# error names the field); a line past MAX_LINE_BYTES is rejected before it is parsed at all.
MAX_LINE_BYTES = 64 * 1024 * 1024
MAX_FILE_BYTES = 1024 * 1024 * 1024
FIELD_LIMITS = {  # characters
    "query": 10_000,
    "persona": 10_000,
    "id": 64,
    "domain": 64,
    "title": 500,
    "instruction": 10_000,
    "passage": 200_000,
    "reasoning": 500_000,
}
BULK_BATCH = 2_000
LOOKUP_CHUNK = 900  # stays under SQLite's bound-variable limit on old builds

ProgressFn = Callable[[int, int], None]


class ImportValidationError(ValueError):
    """A file that cannot be imported; nothing was written. `line` is 1-based, `field` may be empty."""

    def __init__(self, message: str, *, line: int | None = None, field: str = "", filename: str = "", unit: str = "line"):
        self.message = message
        self.line = line
        self.field = field
        self.filename = filename
        where = []
        if filename:
            where.append(filename)
        if line is not None:
            where.append(f"{unit} {line}")  # "row" for parquet and JSON-array files, which have no lines
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)

    def as_dict(self) -> dict:
        return {"error": str(self), "message": self.message, "line": self.line, "field": self.field, "filename": self.filename}


@dataclass
class ImportResult:
    kind: str
    filename: str
    lines: int = 0  # non-blank lines read
    created: int = 0
    duplicates: int = 0  # skipped: already in the database or repeated in the file
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- reading


def _read_bytes(file, filename: str) -> bytes:
    if isinstance(file, (bytes, bytearray, memoryview)):
        data = bytes(file)
    elif isinstance(file, (str, os.PathLike)):
        path = Path(file)
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImportValidationError(f"file is larger than {MAX_FILE_BYTES} bytes", filename=filename)
        data = path.read_bytes()
    else:
        if hasattr(file, "seek"):
            try:
                file.seek(0)
            except Exception:  # non-seekable streams are read from where they are
                pass
        data = file.read(MAX_FILE_BYTES + 1)
        if isinstance(data, str):  # a text-mode handle: already decoded by the caller
            data = data.encode("utf-8")
    if len(data) > MAX_FILE_BYTES:
        raise ImportValidationError(f"file is larger than {MAX_FILE_BYTES} bytes", filename=filename)
    return data


def _lines(data: bytes, filename: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line) for every non-blank line; strict UTF-8 with the line named."""
    return _lines_streamed(io.BytesIO(data), filename)


@contextlib.contextmanager
def _open_stream(file, filename: str):
    """A binary stream over `file` (bytes, a path, or a file-like object), positioned at its start, and the number
    of lines it has (counted in a first pass of 1 MB blocks when it can seek, else None): nothing is held whole."""
    if isinstance(file, (bytes, bytearray, memoryview)):
        stream, close = io.BytesIO(bytes(file)), False
    elif isinstance(file, (str, os.PathLike)):
        if Path(file).stat().st_size > MAX_FILE_BYTES:
            raise ImportValidationError(f"file is larger than {MAX_FILE_BYTES} bytes", filename=filename)
        stream, close = open(file, "rb"), True  # noqa: SIM115 - closed below
    else:
        stream, close = file, False
    try:
        total = None
        if getattr(stream, "seekable", lambda: hasattr(stream, "seek"))():
            stream.seek(0)
            total, last = 0, b"\n"
            while block := stream.read(1 << 20):
                if isinstance(block, str):
                    block = block.encode("utf-8")
                total += block.count(b"\n")
                last = block[-1:]
            total += 0 if last == b"\n" else 1
            stream.seek(0)
        yield stream, total
    finally:
        if close:
            stream.close()


def _lines_streamed(stream, filename: str) -> Iterator[tuple[int, str]]:
    """Non-blank lines of a stream, one in memory at a time (the file's size is checked as it is read)."""
    read = 0
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        if isinstance(raw, str):  # a text-mode handle: already decoded by the caller
            raw = raw.encode("utf-8")
        number += 1
        read += len(raw)
        if read > MAX_FILE_BYTES:
            raise ImportValidationError(f"file is larger than {MAX_FILE_BYTES} bytes", filename=filename)
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        elif len(raw) > MAX_LINE_BYTES:
            raise ImportValidationError(
                f"line is more than the {MAX_LINE_BYTES:,} bytes allowed", line=number, filename=filename)
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ImportValidationError(
                f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})", line=number, filename=filename
            ) from None
        if text.strip():
            yield number, text


def _line_count(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def _is_jsonl(filename: str, data: bytes) -> bool:
    name = filename.lower()
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return True
    if name.endswith((".tsv", ".txt")):
        return False
    return data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def _json_object(text: str, line: int, filename: str) -> dict:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (truncated line?)" if exc.pos >= len(text.rstrip()) - 1 else ""
        raise ImportValidationError(f"not valid JSON: {exc.msg} at column {exc.colno}{hint}", line=line, filename=filename) from None
    if not isinstance(obj, dict):
        raise ImportValidationError(f"expected a JSON object, got {_type_name(obj)}", line=line, filename=filename)
    return obj


def _type_name(value) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _text_field(obj: dict, names: tuple[str, ...], *, line: int, filename: str, required: bool = True, limit_key: str | None = None) -> str:
    """The first present key of `names`, which must be a string (ids may be numbers) within its size limit."""
    key = next((n for n in names if n in obj), None)
    label = limit_key or names[0]
    if key is None:
        if required:
            raise ImportValidationError(f"missing (expected one of: {', '.join(names)})", line=line, field=names[0], filename=filename)
        return ""
    value = obj[key]
    if label == "id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ImportValidationError(f"expected a string, got {_type_name(value)}", line=line, field=key, filename=filename)
    return _check_text(value, label=label, key=key, line=line, filename=filename, required=required)


def _check_text(value: str, *, label: str, key: str, line: int, filename: str, required: bool) -> str:
    limit = FIELD_LIMITS[label]
    if len(value) > limit:
        raise ImportValidationError(f"is {len(value):,} characters, more than the {limit:,} allowed", line=line, field=key, filename=filename)
    value = value.strip()
    if required and not value:
        raise ImportValidationError("is empty", line=line, field=key, filename=filename)
    problem = text_problem(value)
    if problem:
        raise ImportValidationError(problem, line=line, field=key, filename=filename)
    return value


def _existing(model, column: str, hashes: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(hashes), LOOKUP_CHUNK):
        found.update(model.objects.filter(**{f"{column}__in": hashes[i : i + LOOKUP_CHUNK]}).values_list(column, flat=True))
    return found


class _Progress:
    def __init__(self, fn: ProgressFn | None, total: int):
        self.fn, self.total, self.last = fn, total, 0

    def __call__(self, line: int, force: bool = False) -> None:
        if self.fn and (force or line - self.last >= 1000):
            self.fn(min(line, self.total), self.total)
            self.last = line


# ---------------------------------------------------------------- seed queries

_TSV_ID = re.compile(r"^\S{1,64}$")


def seeds_import(*, file: bytes | IO[bytes] | str | os.PathLike, filename: str, source: str = "", progress: ProgressFn | None = None) -> ImportResult:
    """MS MARCO topics (`qid<TAB>query`) or JSONL (`{"query"|"text": ..., "id"|"qid"|"_id": ...}`)."""
    data = _read_bytes(file, filename)
    jsonl = _is_jsonl(filename, data)
    source = source or ("jsonl" if jsonl else "msmarco")
    tick = _Progress(progress, _line_count(data))
    rows: list[tuple[str, str, str]] = []  # (hash, external id, text)
    for line, text in _lines(data, filename):
        if jsonl:
            obj = _json_object(text, line, filename)
            query = _text_field(obj, ("query", "text"), line=line, filename=filename, limit_key="query")
            ext_id = _text_field(obj, ("id", "qid", "_id", "query_id"), line=line, filename=filename, required=False, limit_key="id")
        else:
            if "\t" not in text:
                raise ImportValidationError("expected qid<TAB>query (no tab found; truncated line?)", line=line, field="query", filename=filename)
            ext_id, query = text.split("\t", 1)
            ext_id = ext_id.strip()
            if not _TSV_ID.match(ext_id):
                raise ImportValidationError("expected a query id without spaces, at most 64 characters", line=line, field="qid", filename=filename)
            query = _check_text(query, label="query", key="query", line=line, filename=filename, required=True)
        rows.append((text_hash(query), ext_id, query))
        tick(line)
    tick(tick.total, force=True)

    result = ImportResult(kind="seeds", filename=filename, lines=len(rows))
    with transaction.atomic():
        existing = _existing(SeedQuery, "text_hash", [h for h, _, _ in rows])
        new: list[SeedQuery] = []
        for h, ext_id, query in rows:
            if h in existing:
                result.duplicates += 1
                continue
            existing.add(h)
            new.append(SeedQuery(external_id=ext_id, text=query, source=source, text_hash=h))
        SeedQuery.objects.bulk_create(new, batch_size=BULK_BATCH)
        result.created = len(new)
    return result


# ---------------------------------------------------------------- personas


def personas_import(*, file: bytes | IO[bytes] | str | os.PathLike, filename: str, source: str = "personahub", progress: ProgressFn | None = None) -> ImportResult:
    """PersonaHub JSONL: `{"persona": ...}` (or `{"input persona": ...}` as in its tool sample), optional `domain`."""
    data = _read_bytes(file, filename)
    tick = _Progress(progress, _line_count(data))
    rows: list[tuple[str, str, str]] = []
    for line, text in _lines(data, filename):
        obj = _json_object(text, line, filename)
        persona = _text_field(obj, ("persona", "input persona"), line=line, filename=filename, limit_key="persona")
        domain = _text_field(obj, ("domain",), line=line, filename=filename, required=False)
        rows.append((text_hash(persona), persona, domain))
        tick(line)
    tick(tick.total, force=True)

    result = ImportResult(kind="personas", filename=filename, lines=len(rows))
    with transaction.atomic():
        existing = _existing(Persona, "text_hash", [h for h, _, _ in rows])
        new: list[Persona] = []
        for h, persona, domain in rows:
            if h in existing:
                result.duplicates += 1
                continue
            existing.add(h)
            new.append(Persona(text=persona, domain=domain, source=source, text_hash=h))
        Persona.objects.bulk_create(new, batch_size=BULK_BATCH)
        result.created = len(new)
    return result


# ---------------------------------------------------------------- examples (Rank1 format)

_ALPACA_INPUT = re.compile(r"^Query:(?P<query>.*?)\nPassage:(?P<passage>.*?)(?:\n<think>\s*)?$", re.S)
_ALPACA_OUTPUT = re.compile(r"^(?P<reasoning>.*?)</think>\s*(?P<answer>true|false)\s*$", re.S | re.I)


def _label(obj: dict, line: int, filename: str) -> bool:
    key = next((k for k in ("label", "relevant", "answer") if k in obj), None)
    if key is None:
        raise ImportValidationError("missing (expected true/false)", line=line, field="label", filename=filename)
    value = obj[key]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ImportValidationError(f"expected true or false, got {_type_name(value)} {json.dumps(value)[:40]}", line=line, field=key, filename=filename)


def _alpaca_fields(obj: dict, line: int, filename: str, *, strict: bool = False) -> dict:
    """The alpaca-style training row (instruction / input / output) Rank1 and LimRank train on with LLaMA-Factory
    (template `empty`: the prompt is `instruction + "\\n" + input`). `<think>` may end the input (the inference
    prompt's last line) or open the output; both are accepted. `strict`: the instruction must be Rank1's, since
    the studio rebuilds the prompt with it (a row trained on another instruction would not be that row)."""
    raw_in = _text_field(obj, ("input",), line=line, filename=filename, limit_key="passage")
    raw_out = _text_field(obj, ("output",), line=line, filename=filename, limit_key="reasoning")
    if strict:
        instruction = obj.get("instruction")
        if not isinstance(instruction, str):
            raise ImportValidationError(f"expected a string, got {_type_name(instruction)}", line=line, field="instruction", filename=filename)
        if instruction.strip() != RANK1_INSTRUCTION:
            raise ImportValidationError(f"expected Rank1's instruction {RANK1_INSTRUCTION!r}, got {instruction.strip()[:80]!r}",
                                        line=line, field="instruction", filename=filename)
    m_in, m_out = _ALPACA_INPUT.match(raw_in), _ALPACA_OUTPUT.match(raw_out)
    if not m_in:
        raise ImportValidationError("expected 'Query: ...' and 'Passage: ...' lines", line=line, field="input", filename=filename)
    if not m_out:
        raise ImportValidationError("expected the reasoning, then '</think> true' or '</think> false'", line=line, field="output", filename=filename)
    query = _check_text(m_in["query"], label="query", key="input", line=line, filename=filename, required=True)
    passage = _check_text(m_in["passage"], label="passage", key="input", line=line, filename=filename, required=True)
    reasoning = m_out["reasoning"].strip()
    if reasoning.startswith("<think>"):
        reasoning = reasoning[len("<think>"):].strip()
    if "<think>" in reasoning or "</think>" in reasoning:
        raise ImportValidationError("the reasoning contains another <think> or </think>", line=line, field="output", filename=filename)
    if problem := text_problem(reasoning):
        raise ImportValidationError(problem, line=line, field="output", filename=filename)
    return {"query": query, "instruction": "", "title": "", "passage": passage, "reasoning": reasoning,
            "label": m_out["answer"].lower() == "true", "domain": "", "qid": "", "docid": ""}


def _example_fields(obj: dict, line: int, filename: str) -> dict:
    if "input" in obj and "output" in obj and "query" not in obj:
        return _alpaca_fields(obj, line, filename)
    return {
        "query": _text_field(obj, ("query", "query_text"), line=line, filename=filename, limit_key="query"),
        "instruction": _text_field(obj, ("instruction",), line=line, filename=filename, required=False),
        "title": _text_field(obj, ("title", "passage_title"), line=line, filename=filename, required=False),
        "passage": _text_field(obj, ("passage", "doc", "document", "passage_text", "text"), line=line, filename=filename, limit_key="passage"),
        "reasoning": _text_field(obj, ("reasoning", "reasoning_trace", "thinking"), line=line, filename=filename, required=False),
        "label": _label(obj, line, filename),
        "domain": _text_field(obj, ("domain",), line=line, filename=filename, required=False),
        "qid": _text_field(obj, ("query_id", "qid"), line=line, filename=filename, required=False, limit_key="id"),
        "docid": _text_field(obj, ("doc_id", "docid", "passage_id"), line=line, filename=filename, required=False, limit_key="id"),
    }


def examples_import(
    *,
    file: bytes | IO[bytes] | str | os.PathLike,
    filename: str,
    origin: str = Example.Origin.RANK1,
    dataset: Dataset | None = None,
    status: str | None = None,
    progress: ProgressFn | None = None,
) -> ImportResult:
    """Existing training data as examples. One JSON object per line, either
    `{"query", "passage" (or "doc"/"text"), "reasoning", "label" (true/false, 0/1, "true"/"false"),
      optional "title", "instruction", "domain", "query_id", "doc_id"}`
    or the alpaca-style Rank1 row `{"instruction", "input": "Query: ...\\nPassage: ...\\n<think>", "output": "... </think> true"}`.

    Rank1's data was already filtered by its authors (R1's answer agrees with the label), so rank1 examples
    enter as `approved` unless `status` says otherwise; `imported` ones enter the review queue (`pending_review`)."""
    if origin not in (Example.Origin.RANK1, Example.Origin.IMPORTED):
        raise ImportValidationError(f"origin must be 'rank1' or 'imported', not {origin!r}", field="origin", filename=filename)
    if status is None:
        status = Example.Status.APPROVED if origin == Example.Origin.RANK1 else Example.Status.PENDING_REVIEW
    if status not in Example.Status.values:
        raise ImportValidationError(f"unknown status {status!r}", field="status", filename=filename)
    # Streamed (issue 21): lines are parsed, validated and written a chunk at a time inside one transaction, so
    # memory stays flat in the file's size; a bad line rolls back what earlier chunks wrote (all or nothing).
    with _open_stream(file, filename) as (stream, total):
        tick = _Progress(progress, total or 0)

        def rows():
            for line, text in _lines_streamed(stream, filename):
                yield _example_fields(_json_object(text, line, filename), line, filename)
                if total:
                    tick(line)

        result = _examples_write(rows=rows(), filename=filename, origin=origin, dataset=dataset, status=status)
        if total:
            tick(tick.total, force=True)
    return result


IMPORT_CHUNK = 5_000  # rows parsed, hashed and written at a time


def _examples_write(*, rows: Iterable[dict], filename: str, origin: str, dataset: Dataset | None, status: str,
                    details: dict | None = None) -> ImportResult:
    """Write parsed example rows in one transaction, IMPORT_CHUNK at a time; rows whose content hash exists (in the
    database, which includes the chunks already written, or earlier in the chunk) are counted as duplicates and
    skipped. Memory: one chunk of rows, whatever the file's size (queries and passages are found in the database)."""
    result = ImportResult(kind="examples", filename=filename,
                          details={"origin": origin, "status": status, **(details or {}), "queries": 0, "passages": 0})
    dataset_id = dataset.pk if dataset is not None else None
    with transaction.atomic():
        chunk: list[dict] = []
        written = 0
        for row in rows:
            chunk.append(row)
            if len(chunk) >= IMPORT_CHUNK:
                _examples_chunk_write(chunk, result=result, origin=origin, dataset_id=dataset_id, status=status)
                chunk = []
                written += 1
                # The lookups of the next chunks find rows this transaction wrote; the planner needs statistics that
                # count them (see bulk_statistics_refresh). Taken after chunks 1, 2, 4, 8, ...: a few ANALYZEs of a
                # 30,000-row sample each, whatever the file's size.
                if written & (written - 1) == 0:
                    bulk_statistics_refresh(models_=(GeneratedQuery, Passage, Example))
        if chunk:
            _examples_chunk_write(chunk, result=result, origin=origin, dataset_id=dataset_id, status=status)
    return result


def _imported_ids(model, *, hashes: Iterable[str], keys: set[tuple], fields: tuple[str, ...], **scope) -> dict[tuple, int]:
    """Ids of the imported rows (`scope`) whose `fields` are one of `keys`, found by their indexed text_hash; the
    oldest row of a key wins, so every import resolves a key to the same row."""
    hashes = sorted(set(hashes))
    found: dict[tuple, int] = {}
    for i in range(0, len(hashes), LOOKUP_CHUNK):
        candidates = model.objects.filter(text_hash__in=hashes[i : i + LOOKUP_CHUNK], **scope).values_list("pk", *fields)
        for pk, *values in candidates.order_by("-pk"):
            if tuple(values) in keys:
                found[tuple(values)] = pk
    return found


def _examples_chunk_write(chunk: list[dict], *, result: ImportResult, origin: str, dataset_id, status: str) -> None:
    result.lines += len(chunk)
    for row in chunk:
        full_query = f"{row['query']} {row['instruction']}".strip()
        passage_full = f"{row['title']} {row['passage']}".strip()
        row["hash"] = example_content_hash(query=full_query, passage=passage_full, label=row["label"])
    existing = _existing(Example, "content_hash", [r["hash"] for r in chunk])
    fresh = []
    for row in chunk:
        if row["hash"] in existing:
            result.duplicates += 1
            continue
        existing.add(row["hash"])
        fresh.append(row)
    if not fresh:
        return
    # One query row per distinct (query, instruction) and one passage row per distinct (title, passage, kind) among
    # imported data: rows of earlier chunks and imports are found in the database (the pipeline's own queries and
    # passages, which carry their run and query, are never matched), the rest written through
    # curation.services.bulk (COPY on PostgreSQL, bulk_create in batches elsewhere).
    for row in fresh:
        row["qkey"] = (row["query"], row["instruction"])
        row["pkey"] = (row["title"], row["passage"], Passage.Kind.POSITIVE if row["label"] else Passage.Kind.HARD_NEGATIVE)
        row["qhash"], row["phash"] = text_hash(row["query"]), text_hash(row["passage"])
    query_ids = _imported_ids(
        GeneratedQuery, hashes=(r["qhash"] for r in fresh), keys={r["qkey"] for r in fresh}, fields=("text", "instruction"),
        variant=GeneratedQuery.Variant.ORIGINAL, generation_run__isnull=True, seed__isnull=True, persona__isnull=True)
    passage_ids = _imported_ids(
        Passage, hashes=(r["phash"] for r in fresh), keys={r["pkey"] for r in fresh}, fields=("title", "text", "kind"),
        source=origin, query__isnull=True)
    new_queries: dict[tuple, tuple] = {}
    new_passages: dict[tuple, tuple] = {}
    for r in fresh:
        if r["qkey"] not in query_ids:
            new_queries.setdefault(r["qkey"], (GeneratedQuery.Variant.ORIGINAL, r["domain"], r["query"], r["instruction"], r["qhash"]))
        if r["pkey"] not in passage_ids:
            new_passages.setdefault(r["pkey"], (r["title"], r["passage"], r["pkey"][2], origin, r["phash"]))
    if new_queries:
        query_ids.update(zip(new_queries, bulk_insert(
            model=GeneratedQuery, fields=("variant", "domain", "text", "instruction", "text_hash"),
            rows=list(new_queries.values()), ids=True)))
    if new_passages:
        passage_ids.update(zip(new_passages, bulk_insert(
            model=Passage, fields=("title", "text", "kind", "source", "text_hash"), rows=list(new_passages.values()),
            ids=True)))
    result.details["queries"] += len(new_queries)
    result.details["passages"] += len(new_passages)
    result.created += bulk_insert(
        model=Example,
        fields=("dataset_id", "query_id", "passage_id", "intended_label", "reasoning_trace", "reasoner_judgment",
                "origin", "status", "content_hash"),
        rows=((dataset_id, query_ids[row["qkey"]], passage_ids[row["pkey"]], row["label"], row["reasoning"],
               row["label"] if row["reasoning"] else None, origin, status, row["hash"]) for row in fresh))


# ---------------------------------------------------------------- the authors' released training data

# Where each format is published, and what its rows are in the studio. Schema and sources:
# tests/curation/fixtures/authors/README.md and docs/data-formats.md.
AUTHORS_FORMATS = {
    # Rank1's MS MARCO training data (R1 reasoning, already filtered by its authors).
    "rank1-hf": {"hub": "jhu-clsp/rank1-training-data", "data_files": None, "origin": Example.Origin.RANK1},
    # LimRank's released training file (LLaMA-Factory dataset `limrank_data` -> train_limrank.json). Its Rank1 part
    # is skipped as duplicates when rank1-hf was imported first; what is new enters as synthetic.
    "limrank-hf": {"hub": "songtingyu/limrank-data", "data_files": "train_limrank.json", "origin": Example.Origin.SYNTHETIC},
}
AUTHORS_COLUMNS = ("instruction", "input", "output")


def _authors_rows(data: bytes, filename: str) -> tuple[str, Iterator[tuple[int, dict]]]:
    """(unit, rows) of a file as published: parquet (the hub's format), JSON lines, or one JSON array
    (LLaMA-Factory's data files). Rows are numbered from 1."""
    if filename.lower().endswith(".parquet") or data[:4] == b"PAR1":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(io.BytesIO(data))
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
            raise ImportValidationError(f"not a readable parquet file ({exc})", filename=filename) from None
        return "row", enumerate(table.to_pylist(), start=1)
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"[":
        try:
            rows = json.loads(data.decode("utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ImportValidationError(f"not a valid JSON array ({exc})", filename=filename) from None
        for i, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                raise ImportValidationError(f"expected a JSON object, got {_type_name(row)}", line=i, filename=filename, unit="row")
        return "row", enumerate(rows, start=1)
    return "line", ((line, _json_object(text, line, filename)) for line, text in _lines(data, filename))


def _authors_hub_rows(fmt: dict) -> tuple[str, Iterator[tuple[int, dict]]]:
    try:
        from datasets import load_dataset
    except ImportError as exc:  # datasets is in requirements.txt
        raise ImportValidationError("install datasets (requirements.txt) to read from the hub") from exc
    kwargs = {"data_files": fmt["data_files"]} if fmt["data_files"] else {}
    try:
        rows = load_dataset(fmt["hub"], split="train", **kwargs)
    except Exception as exc:  # noqa: BLE001 - offline, missing repo, ...: say so, import nothing
        raise ImportValidationError(f"cannot load {fmt['hub']} from the hub ({type(exc).__name__}: {exc}); "
                                    f"download the file and import it by path", filename=fmt["hub"]) from None
    return "row", enumerate(rows, start=1)


def examples_import_authors(
    *,
    format: str,
    file: bytes | IO[bytes] | str | os.PathLike | None = None,
    filename: str = "",
    online: bool = False,
    dataset: Dataset | None = None,
    status: str | None = None,
    progress: ProgressFn | None = None,
) -> ImportResult:
    """The authors' training data in their published schema: rows `{"instruction", "input", "output"}` with Rank1's
    instruction, `input` = `Query: ...\\nPassage: ...` and `output` = reasoning then `</think> true|false`.
    From a local parquet / JSONL / JSON-array file, or (`online`) from the hub with `datasets`. All or nothing:
    a bad row rejects the file, naming the row (or line) and the column. Rows enter `approved` (the authors
    filtered them) unless `status` says otherwise."""
    if format not in AUTHORS_FORMATS:
        raise ImportValidationError(f"unknown format {format!r}; one of {', '.join(AUTHORS_FORMATS)}", field="format")
    fmt = AUTHORS_FORMATS[format]
    status = status or Example.Status.APPROVED
    if status not in Example.Status.values:
        raise ImportValidationError(f"unknown status {status!r}", field="status")
    if online:
        filename = f"hub:{fmt['hub']}" + (f"/{fmt['data_files']}" if fmt["data_files"] else "")
        unit, source = _authors_hub_rows(fmt)
    else:
        if file is None:
            raise ImportValidationError("no file given (or read the hub with online=True)", field="file")
        if isinstance(file, (str, os.PathLike)):
            if not Path(file).is_file():
                raise ImportValidationError("no such file", filename=str(file))
            filename = filename or Path(file).name
        unit, source = _authors_rows(_read_bytes(file, filename), filename)
    rows: list[dict] = []
    ignored: set[str] = set()
    for n, obj in source:
        missing = [c for c in AUTHORS_COLUMNS if c not in obj]
        if missing:
            raise ImportValidationError(f"missing column(s) {', '.join(missing)} (the published schema is "
                                        f"{', '.join(AUTHORS_COLUMNS)})", line=n, field=missing[0], filename=filename, unit=unit)
        ignored.update(k for k in obj if k not in AUTHORS_COLUMNS)
        try:
            rows.append(_alpaca_fields(obj, n, filename, strict=True))
        except ImportValidationError as exc:
            raise ImportValidationError(exc.message, line=exc.line, field=exc.field, filename=filename, unit=unit) from None
    if not rows:
        raise ImportValidationError("no rows", filename=filename)
    if progress:
        progress(len(rows), len(rows))
    return _examples_write(rows=rows, filename=filename, origin=fmt["origin"], dataset=dataset, status=status,
                           details={"format": format, "ignored_columns": sorted(ignored)})
