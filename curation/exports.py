"""Streaming exports of a frozen dataset version: JSONL (every field), Rank1 training rows, parquet.

Memory stays constant in the version's size: members are read in fixed-size position ranges (keyset on the
unique (version, position) index, no OFFSET, no server-side cursor) and each range is encoded and handed to
the response before the next is read. Parquet is written one row group at a time into a sink that the
response drains after every row group.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

from django.db import connection

from curation.formats import rank1_example
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
CHUNK_ROWS = 2000
PARQUET_ROW_GROUP = 5_000


def export_filename(version: DatasetVersion, fmt: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in version.dataset.name)
    return f"{safe}-v{version.version}.{EXTENSIONS[fmt]}"


def _ranges(version: DatasetVersion, start: int, chunk: int) -> Iterator[tuple[int, int]]:
    # Positions are 0..example_count-1 without gaps (the build writes them so).
    for lo in range(max(0, start), version.example_count, chunk):
        yield lo, min(lo + chunk, version.example_count)


def member_rows(version: DatasetVersion, *, fields=FIELDS, start: int = 0, chunk: int = CHUNK_ROWS) -> Iterator[list[tuple]]:
    """Lists of value tuples, `chunk` members at a time, in position order."""
    base = DatasetVersionMember.objects.filter(version_id=version.pk)
    for lo, hi in _ranges(version, start, chunk):
        yield list(base.filter(position__gte=lo, position__lt=hi).order_by("position").values_list(*fields))


# ---------------------------------------------------------------- JSONL


def jsonl_stream(version: DatasetVersion, *, start: int = 0) -> Iterator[bytes]:
    """The database encodes each row as JSON (PostgreSQL's row_to_json, SQLite's json_object), keys in
    FIELDS order; Python only joins lines. Other databases take the portable path; rows are equal either way."""
    if connection.vendor == "postgresql":
        return _jsonl_stream_postgres(version, start=start)
    if connection.vendor == "sqlite":
        return _jsonl_stream_sqlite(version, start=start)
    return jsonl_stream_portable(version, start=start)


def jsonl_stream_portable(version: DatasetVersion, *, start: int = 0, chunk: int = CHUNK_ROWS) -> Iterator[bytes]:
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for rows in member_rows(version, start=start, chunk=chunk):
        yield "".join(dumps(dict(zip(FIELDS, row))) + "\n" for row in rows).encode("utf-8")


def _range_sql(select: str) -> str:
    q = connection.ops.quote_name
    return f"{select} FROM {q(DatasetVersionMember._meta.db_table)} WHERE version_id = %s AND {q('position')} >= %s AND {q('position')} < %s"


def _jsonl_stream_postgres(version: DatasetVersion, *, start: int, block_bytes: int = 1 << 20) -> Iterator[bytes]:
    """`COPY (SELECT row_to_json(...)) TO STDOUT`: PostgreSQL encodes and streams the rows (one COPY message per
    row, read as it arrives: constant memory). COPY's text format escapes only backslashes here (JSON text has no
    raw control characters), so undoing it is one replace over whole rows."""
    q = connection.ops.quote_name
    cols = ", ".join(q(f) for f in FIELDS)
    sql = (
        f"COPY (SELECT row_to_json(t) FROM (SELECT {cols} FROM {q(DatasetVersionMember._meta.db_table)} "
        f"WHERE version_id = {int(version.pk)} AND {q('position')} >= {int(start)} ORDER BY {q('position')}) AS t) TO STDOUT"
    )
    with connection.cursor() as cursor:
        with cursor.cursor.copy(sql) as copy:
            parts: list[bytes] = []
            size = 0
            for row in copy:  # one message per row, ending in a newline
                parts.append(row)
                size += len(row)
                if size >= block_bytes:
                    yield b"".join(parts).replace(b"\\\\", b"\\")
                    parts.clear()
                    size = 0
            if parts:
                yield b"".join(parts).replace(b"\\\\", b"\\")


_SQLITE_BOOL = "CASE WHEN {c} IS NULL THEN NULL WHEN {c} THEN json('true') ELSE json('false') END"


def _jsonl_stream_sqlite(version: DatasetVersion, *, start: int, chunk: int = CHUNK_ROWS) -> Iterator[bytes]:
    q = connection.ops.quote_name

    def expr(f: str) -> str:
        if f in ("label", "reasoner_judgment"):
            return _SQLITE_BOOL.format(c=q(f))
        if f == "prompt_versions":
            return f"json({q(f)})"
        return q(f)

    pairs = ", ".join(f"'{f}', {expr(f)}" for f in FIELDS)
    sql = _range_sql(f"SELECT json_object({pairs})") + f" ORDER BY {q('position')}"
    with connection.cursor() as cursor:
        for lo, hi in _ranges(version, start, chunk):
            cursor.execute(sql, [version.pk, lo, hi])
            lines = [row[0] for row in cursor.fetchall()]
            if lines:
                lines.append("")
                yield "\n".join(lines).encode("utf-8")


# ---------------------------------------------------------------- Rank1 training rows

_RANK1_FIELDS = ("query_text", "instruction", "passage_title", "passage_text", "reasoning_trace", "label")


def rank1_stream(version: DatasetVersion, *, start: int = 0) -> Iterator[bytes]:
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for rows in member_rows(version, fields=_RANK1_FIELDS, start=start):
        yield "".join(
            dumps(rank1_example(query=q, instruction=instr, passage_title=title, passage_text=text, reasoning=trace, label=label)) + "\n"
            for q, instr, title, text, trace, label in rows
        ).encode("utf-8")


# ---------------------------------------------------------------- parquet


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


class _DrainSink:
    """A write-only file for ParquetWriter whose bytes the response takes after each row group."""

    def __init__(self):
        self._parts: list[bytes] = []
        self._pos = 0
        self.closed = False

    def write(self, data) -> int:
        b = bytes(data)
        self._parts.append(b)
        self._pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def parquet_stream(version: DatasetVersion) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    sink = _DrainSink()
    pv = FIELDS.index("prompt_versions")
    with pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd") as writer:
        for rows in member_rows(version, chunk=PARQUET_ROW_GROUP):
            columns = [list(col) for col in zip(*rows)]
            columns[pv] = [json.dumps(v or {}, sort_keys=True) for v in columns[pv]]
            writer.write_table(pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, schema)], schema=schema))
            chunk = sink.drain()
            if chunk:
                yield chunk
    yield sink.drain()


def export_stream(version: DatasetVersion, fmt: str, *, start: int = 0) -> Iterator[bytes]:
    if fmt == "jsonl":
        return jsonl_stream(version, start=start)
    if fmt == "rank1":
        return rank1_stream(version, start=start)
    if fmt == "parquet":
        return parquet_stream(version)
    raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
