"""Exports of a frozen dataset version: JSONL (every field), Rank1 training rows, parquet.

A version never changes, so each of its formats is rendered once, into a file under MEDIA_ROOT/exports/, by the
Celery task that finishes the version's build (curation.services.datasets.dataset_version_render); the API serves
those files (byte ranges, ETag). One encoder per format, reading the members in fixed-size position ranges (keyset
on the unique (version, position) index), so memory stays flat whatever the version's size.

A file is written to a temporary name in the same directory and renamed into place only once complete: a reader
never sees a half file, and two renders of the same version (a redelivered task) each write the same bytes.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import orjson
from django.conf import settings
from django.db.models import TextField
from django.db.models.functions import Cast

from curation.protocol import training_example as rank1_example
from curation.models import DatasetVersion, DatasetVersionMember

FORMATS = ("jsonl", "rank1", "parquet")
MEDIA_TYPES = {
    "jsonl": "application/x-ndjson; charset=utf-8",
    "rank1": "application/x-ndjson; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
EXTENSIONS = {"jsonl": "jsonl", "rank1": "rank1.jsonl", "parquet": "parquet"}
# Every field of a member, in this order, is a key of a JSONL row and a parquet column.
FIELDS = (
    "position", "example_id", "query_text", "instruction", "passage_title", "passage_text", "reasoning_trace",
    "label", "origin", "variant", "domain", "reasoner_judgment", "reasoner_model", "prompt_versions", "content_hash",
)
CHUNK_ROWS = 1000
PARQUET_ROW_GROUP = 5_000
_WRITEBACK_BYTES = 32 << 20
_RANK1_FIELDS = ("query_text", "instruction", "passage_title", "passage_text", "reasoning_trace", "label")
_PARTIAL_SUFFIX = ".partial"


def export_filename(version: DatasetVersion, fmt: str) -> str:
    """The name a download is saved under."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in version.dataset.name)
    return f"{safe}-v{version.version}.{EXTENSIONS[fmt]}"


def member_rows(version: DatasetVersion, *, fields=FIELDS, chunk: int | None = None) -> Iterator[list[tuple]]:
    """Lists of value tuples, `chunk` members at a time, in position order."""
    # Positions are 0..example_count-1 without gaps (the build writes them so).
    base = DatasetVersionMember.objects.filter(version_id=version.pk).annotate(
        prompt_versions_json=Cast("prompt_versions", TextField()))
    step = chunk or CHUNK_ROWS
    for lo in range(0, version.example_count, step):
        hi = min(lo + step, version.example_count)
        yield list(base.filter(position__gte=lo, position__lt=hi).order_by("position").values_list(*fields))


# ---------------------------------------------------------------- encoders: one per format

def _line(obj: dict) -> bytes:
    # orjson: compact, UTF-8 (no ASCII escaping), keys in insertion order; RFC 8259 JSON, read back by any parser.
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


# prompt_versions is stored as JSON: its text goes into the line as it is (orjson.Fragment), not decoded and encoded
# again, which was a third of the encoder's time.
_JSONL_COLUMNS = tuple("prompt_versions_json" if f == "prompt_versions" else f for f in FIELDS)


def jsonl_blocks(version: DatasetVersion) -> Iterator[bytes]:
    """Every member as one JSON object per line, keys in FIELDS order."""
    for rows in member_rows(version, fields=_JSONL_COLUMNS):
        lines = []
        for row in rows:
            obj = dict(zip(FIELDS, row))
            obj["prompt_versions"] = orjson.Fragment(obj["prompt_versions"])
            lines.append(_line(obj))
        yield b"".join(lines)


def rank1_blocks(version: DatasetVersion) -> Iterator[bytes]:
    """Rank1 training rows (curation.protocol.training_example), one per line."""
    for rows in member_rows(version, fields=_RANK1_FIELDS):
        yield b"".join(
            _line(rank1_example(query=q, instruction=instr, passage_title=title, passage_text=text, reasoning=trace,
                                label=label))
            for q, instr, title, text, trace, label in rows
        )


def parquet_schema():
    import pyarrow as pa

    return pa.schema([
        ("position", pa.int64()), ("example_id", pa.int64()), ("query_text", pa.string()), ("instruction", pa.string()),
        ("passage_title", pa.string()), ("passage_text", pa.string()), ("reasoning_trace", pa.string()),
        ("label", pa.bool_()), ("origin", pa.string()), ("variant", pa.string()), ("domain", pa.string()),
        ("reasoner_judgment", pa.bool_()), ("reasoner_model", pa.string()),
        # A JSON object as text: a map column would not read back "unchanged" through `datasets`.
        ("prompt_versions", pa.string()), ("content_hash", pa.string()),
    ])


def parquet_write(version: DatasetVersion, file: BinaryIO) -> None:
    """The version as parquet (zstd), one row group per PARQUET_ROW_GROUP members."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    pv = FIELDS.index("prompt_versions")
    with pq.ParquetWriter(file, schema, compression="zstd") as writer:
        for rows in member_rows(version, chunk=PARQUET_ROW_GROUP):
            columns = [list(col) for col in zip(*rows)]
            columns[pv] = [json.dumps(v or {}, sort_keys=True) for v in columns[pv]]
            writer.write_table(pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, schema)], schema=schema))


def _write(version: DatasetVersion, fmt: str, file: BinaryIO) -> None:
    if fmt == "jsonl":
        blocks = jsonl_blocks(version)
    elif fmt == "rank1":
        blocks = rank1_blocks(version)
    elif fmt == "parquet":
        return parquet_write(version, file)
    else:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    flushed = 0
    for block in blocks:
        file.write(block)
        if file.tell() - flushed >= _WRITEBACK_BYTES:
            flushed = _writeback_start(file, flushed)


def _writeback_start(file: BinaryIO, start: int) -> int:
    """Hand the bytes written since `start` to the disk now, without waiting; returns the new start.

    Otherwise a large render fills the page cache with dirty pages: the kernel then throttles the writer, and the
    fsync before the rename writes everything at once (half of a 1M-member render's time). PostgreSQL paces its own
    writes the same way (backend_flush_after); Python has no sync_file_range, and POSIX_FADV_DONTNEED starts the
    writeback of dirty pages on Linux."""
    file.flush()
    end = file.tell()
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(file.fileno(), start, end - start, os.POSIX_FADV_DONTNEED)
    return end


# ---------------------------------------------------------------- files


def export_dir() -> Path:
    return Path(settings.MEDIA_ROOT) / "exports"


def export_path(version: DatasetVersion, fmt: str) -> Path:
    """Where the version's file in this format lives. Named by id, creation time and content hash: a database
    restored elsewhere reuses ids, and the content hash alone does not cover ids and provenance."""
    created_us = int(version.created_at.timestamp() * 1_000_000)
    return export_dir() / f"v{version.pk}-{created_us}-{version.content_hash}.{EXTENSIONS[fmt]}"


def export_render(*, version: DatasetVersion, fmt: str) -> Path:
    """Write the version's file in `fmt` unless it exists; returns its path."""
    path = export_path(version, fmt)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=_PARTIAL_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as file:
            _write(version, fmt, file)
            file.flush()
            os.fsync(file.fileno())  # the rename below must never publish a file whose data is not on disk
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def export_open(version: DatasetVersion, fmt: str) -> BinaryIO | None:
    """The version's rendered file in `fmt`, open unbuffered (a server's sendfile reads from the descriptor's
    position, which a buffered reader would not keep where seek() says), or None if it has not been rendered."""
    try:
        return open(export_path(version, fmt), "rb", buffering=0)
    except FileNotFoundError:
        return None


def export_row_offset(file: BinaryIO, row: int) -> int:
    """Byte offset of row `row` (0-based) in a JSON-lines file: its size when the file has fewer rows."""
    if row <= 0:
        return 0
    file.seek(0)
    seen = pos = 0
    while chunk := file.read(1 << 20):
        n = chunk.count(b"\n")
        if seen + n >= row:
            index = -1
            for _ in range(row - seen):
                index = chunk.index(b"\n", index + 1)
            return pos + index + 1
        seen += n
        pos += len(chunk)
    return pos


def export_files_prune(*, partial_age_s: float = 3600.0) -> dict[str, int]:
    """Delete files of versions that no longer exist or failed, and temporary files untouched for partial_age_s (a
    killed render's). Returns counts and bytes freed."""
    root = export_dir()
    stats = {"files": 0, "bytes": 0}
    if not root.is_dir():
        return stats
    live = {export_path(v, fmt).name
            for v in DatasetVersion.objects.exclude(status=DatasetVersion.Status.FAILED).only("pk", "created_at", "content_hash")
            for fmt in FORMATS}
    now = time.time()
    for entry in root.iterdir():
        if entry.name in live or not entry.name.startswith("v"):
            continue
        try:
            info = entry.stat()
            if entry.name.endswith(_PARTIAL_SUFFIX) and now - info.st_mtime < partial_age_s:
                continue  # a render is writing it (every write moves its mtime)
            entry.unlink()
        except FileNotFoundError:
            continue
        stats["files"] += 1
        stats["bytes"] += info.st_size
    return stats
