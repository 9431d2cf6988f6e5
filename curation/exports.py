"""Exports of a frozen dataset version: JSONL (every field), Rank1 training rows, parquet; and export snapshots.

Memory stays constant in the version's size. Members are read in fixed-size position ranges (keyset on the unique
(version, position) index, no OFFSET, no server-side cursor) and each range is encoded and handed to the response
before the next is read; parquet is written one row group at a time into a sink the response drains.

A version is immutable, so its export in a format is too: the first full export is written to a snapshot file
while it streams (see "snapshots" below), and later requests are served from that file (sendfile, byte ranges).
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import queue
import re
import select
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import connection, transaction

from curation.protocol import training_example
from curation.models import DatasetVersion, DatasetVersionMember

logger = logging.getLogger(__name__)

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


def _ranges(version: DatasetVersion, start: int, chunk: int, stop: int | None = None) -> Iterator[tuple[int, int]]:
    # Positions are 0..example_count-1 without gaps (the build writes them so).
    end = version.example_count if stop is None else min(stop, version.example_count)
    for lo in range(max(0, start), end, chunk):
        yield lo, min(lo + chunk, end)


def member_rows(
    version: DatasetVersion, *, fields=FIELDS, start: int = 0, stop: int | None = None, chunk: int | None = None
) -> Iterator[list[tuple]]:
    """Lists of value tuples, `chunk` members at a time, in position order, positions start..stop-1."""
    base = DatasetVersionMember.objects.filter(version_id=version.pk)
    for lo, hi in _ranges(version, start, chunk or CHUNK_ROWS, stop):
        yield list(base.filter(position__gte=lo, position__lt=hi).order_by("position").values_list(*fields))


# ---------------------------------------------------------------- JSONL


def jsonl_stream(version: DatasetVersion, *, start: int = 0) -> Iterator[bytes]:
    """Fast paths per database (PostgreSQL: COPY + block-wide bytes operations; SQLite: json_object in SQL), keys in
    FIELDS order. Other databases take the portable path; the rows are equal either way (tests compare them)."""
    if connection.vendor == "postgresql":
        return _jsonl_stream_postgres(version, start=start)
    if connection.vendor == "sqlite":
        return _jsonl_stream_sqlite(version, start=start)
    return jsonl_stream_portable(version, start=start)


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def jsonl_stream_portable(
    version: DatasetVersion, *, start: int = 0, stop: int | None = None, chunk: int | None = None
) -> Iterator[bytes]:
    """The reference encoder (json.dumps per row); the fast paths produce the same rows."""
    for rows in member_rows(version, start=start, stop=stop, chunk=chunk):
        yield "".join(_dumps(dict(zip(FIELDS, row))) + "\n" for row in rows).encode("utf-8")


def _range_sql(select: str) -> str:
    q = connection.ops.quote_name
    return f"{select} FROM {q(DatasetVersionMember._meta.db_table)} WHERE version_id = %s AND {q('position')} >= %s AND {q('position')} < %s"


# ---- PostgreSQL: COPY writes the JSON lines themselves, a group of consecutive members per COPY row, so that Python
# hands ~256 KB blocks on with a few C-speed bytes operations each: no Python work per field, almost none per row, one
# libpq call per group (reading COPY row by row cost one C call per member: ~1.3 s of CPU per million).
#
# A COPY row is `g"n"LINE\x03LINE...\x03LINE`: g the group's first position, n its number of members, LINE a member's
# JSON object whose structural quotes the SQL writes as the byte \x01 (keys, commas and colons glued with ||) and whose
# prompt_versions stands between two \x02 bytes. COPY's text format escapes a value's backslash, \n, \r, \t, \b and
# \f exactly as JSON does and, with the double quote as the column delimiter, a double quote as \" too: the data
# comes out JSON-escaped. Python turns \x01 into quotes and \x03 into newlines (bytes.replace, memchr-fast) and
# replaces each prompt_versions (usually one value for a whole group: one more bytes.replace). Where COPY differs:
# - a vertical tab (COPY \v, JSON \u000b) and the control characters COPY leaves raw (JSON \u00XX): rewritten in
#   the block (rare; only after checking that every marker byte is where the SQL put it);
# - data holding a raw marker byte (\x01, \x02 or \x03): the group takes the exact path, the portable encoder (the
#   COPY is read to its end first, the connection being busy until then, and the next COPY starts after the group);
# - prompt_versions, the one field that is JSON already: jsonb's text has spaces ({"a": 1}) and keeps the scale of
#   numbers (1.50); its values are few and repeat, so each distinct one is decoded once and encoded like the
#   portable encoder does.
# Every row equals the portable path's, byte for byte (tests compare).
# Why not let PostgreSQL escape JSON (to_json(text), row_to_json) or CSV: measured, its escape_json and replace()
# scan byte by byte, 2.5x the cost of the plain COPY of the same rows; COPY's own escaping costs no more than it.

_PG_TEXT = frozenset({"query_text", "instruction", "passage_title", "passage_text", "reasoning_trace", "origin", "variant",
                      "domain", "reasoner_model", "content_hash"})
_MARK, _PV_MARK, _SEP = "\x01", "\x02", "\x03"  # quotes; around prompt_versions; between two lines of a group
_PG_COPY_ROWS = 200_000  # most members per COPY statement: bounds what an abandoned COPY (client gone) reads on
_PG_FIRST_COPY_ROWS = 4_096  # the first COPY's (and the first after a group took the exact path); 4x per COPY after
_PG_BLOCK_BYTES = 1 << 18  # a group's COPY row, once the members' size is known (measured: faster than 128 KB or 1 MB)
_PG_GROUP_ROWS_MAX = 10_000
_PG_ROW_BYTES_GUESS = 16_384  # before the first group is read: small first groups, whatever the members' size
_PV_CACHE_MAX = 10_000
_COPY_ESCAPE = re.compile(rb"\\(.)")
_COPY_UNESCAPE = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v", b"\\": b"\\"}
# Control bytes COPY leaves raw (it escapes \b \t \n \v \f \r), less the markers: data, JSON-escaped as \u00XX.
_RAW_CONTROL = re.compile(rb"[\x04-\x07\x0e-\x1f]")
_COPY_VT = re.compile(rb"\\[\\v]")  # left to right, so an escaped backslash never starts an escape


def _pg_literal(text: str) -> str:
    out = text.replace("\\", "\\\\").replace("'", "\\'")
    for marker in (_MARK, _PV_MARK, _SEP):
        out = out.replace(marker, f"\\x{ord(marker):02x}")
    return "E'" + out + "'"


def _pg_value(f: str, q) -> str:
    if f == "label":
        return f"CASE WHEN {q(f)} THEN 'true' ELSE 'false' END"
    if f == "reasoner_judgment":
        return f"CASE WHEN {q(f)} IS NULL THEN 'null' WHEN {q(f)} THEN 'true' ELSE 'false' END"
    if f in _PG_TEXT:
        return q(f)  # NOT NULL columns (a NULL would make the line NULL: counted, not aggregated, so the exact path)
    if f == "prompt_versions":
        return f"COALESCE({q(f)}::text, 'null')"
    return f"{q(f)}::text"


def _pg_line() -> tuple[str, int]:
    """The SQL of one member's line (every field preceded by its glue, joined with ||: cheaper for PostgreSQL than
    concat(), which calls an output function per argument and row), and the number of \x01 it holds."""
    q = connection.ops.quote_name
    parts, sep = [], "{"
    for f in FIELDS:
        quote = _MARK if f in _PG_TEXT else _PV_MARK if f == "prompt_versions" else ""
        parts += [_pg_literal(f"{sep}{_MARK}{f}{_MARK}:{quote}"), _pg_value(f, q)]
        sep = quote + ","
    parts.append(_pg_literal(sep[:-1] + "}"))
    return _pg_concat(parts), "".join(parts[::2]).count("\\x01")


def _pg_concat(parts: list[str]) -> str:
    """a || b || ... as a balanced tree: each || copies both operands, and a left-deep chain copies the start of the
    line once per field after it (measured: 10% of the COPY's cost)."""
    if len(parts) == 1:
        return parts[0]
    middle = len(parts) // 2
    return f"({_pg_concat(parts[:middle])} || {_pg_concat(parts[middle:])})"


def _pg_copy_sql(version: DatasetVersion, lo: int, hi: int, group: int, line: str) -> str:
    """COPY of positions lo..hi-1, one row per `group` positions. Each group is an index range scan of the unique
    (version, position) index, in position order: the ordered subquery feeds string_agg (it is not flattened into
    the aggregate: it has an ORDER BY), and the groups come in generate_series' order, which the reader checks."""
    q = connection.ops.quote_name
    pos = q("position")
    return (
        f"COPY (SELECT g, s.n, s.l FROM generate_series({int(lo)}, {int(hi) - 1}, {int(group)}) AS g, LATERAL ("
        f"SELECT count(*) AS n, string_agg(m.l, {_pg_literal(_SEP)}) AS l FROM ("
        f"SELECT {line} AS l FROM {q(DatasetVersionMember._meta.db_table)} WHERE version_id = {int(version.pk)} "
        f"AND {pos} >= g AND {pos} < LEAST(g + {int(group)}, {int(hi)}) ORDER BY {pos}) AS m) AS s"
        f") TO STDOUT (DELIMITER '\"')"
    )


def _copy_unescape(field: bytes) -> bytes:
    return _COPY_ESCAPE.sub(lambda m: _COPY_UNESCAPE.get(m.group(1), m.group(1)), field)


class _PromptVersions(dict):
    """COPY text of a prompt_versions value -> its portable JSON encoding (computed once per value)."""

    def __missing__(self, escaped: bytes) -> bytes:
        if len(self) >= _PV_CACHE_MAX:
            self.clear()
        value = self[escaped] = _dumps(json.loads(_copy_unescape(escaped))).encode("utf-8")
        return value


def _json_control(m: re.Match) -> bytes:
    return b"\\u%04x" % m.group()[0]


def _json_vt(m: re.Match) -> bytes:
    return b"\\u000b" if m.group() == b"\\v" else m.group()


def _pg_group_head(view) -> tuple[int, int, int]:
    """(first position, members, offset of the first line) of a group's COPY row: `g"n"...`."""
    head = bytes(view[:48])  # two integers and their delimiters
    i = head.index(b'"')
    j = head.index(b'"', i + 1)
    return int(head[:i]), int(head[i + 1:j]), j + 1


class _Scratch:
    """A boolean array reused from group to group (numpy's temporaries would be fresh megabytes each time)."""

    def __init__(self):
        import numpy as np

        self.np = np
        self._mask = np.empty(0, dtype=bool)

    def mask(self, n: int):
        if self._mask.size < n:
            self._mask = self.np.empty(max(n, 2 * self._mask.size), dtype=bool)
        return self._mask[:n]


def _pg_group_to_jsonl(data: bytes, rows: int, marks_per_row: int, prompt_versions: _PromptVersions,
                       scratch: _Scratch) -> bytes | None:
    """A group's lines as COPY wrote them (`LINE\x03...LINE\n`) -> JSON lines, or None: it must take the exact path."""
    np = scratch.np
    a = np.frombuffer(data, dtype=np.uint8)
    mask = scratch.mask(a.size)
    # Markers: \x01 in each line, two \x02 around its prompt_versions, \x03 after it (the last line: the newline).
    if int(np.count_nonzero(np.less(a, 0x20, out=mask))) != rows * (marks_per_row + 3):
        # The data holds raw control characters: fine if every marker byte is one of the SQL's.
        counts = np.bincount(a[mask], minlength=0x20)
        if counts[1] != rows * marks_per_row or counts[2] != 2 * rows or counts[3] != rows - 1 or counts[0x0A] != 1:
            return None
        data = _RAW_CONTROL.sub(_json_control, data)
    backslashes = np.flatnonzero(np.equal(a, 0x5C, out=mask))
    if backslashes.size and np.any(a[backslashes + 1] == 0x76):  # "\v": a vertical tab, or "\\" then "v"
        data = _COPY_VT.sub(_json_vt, data)
    data = data.replace(b"\x01", b'"')
    # The first line's prompt_versions, replaced wherever it occurs. A match starts at an opening \x02 (the search
    # resumes after the closing one) and never spans two lines: a prompt_versions' text holds no \x03 or newline.
    start = data.index(b"\x02")
    marked = data[start:data.index(b"\x02", start + 1) + 1]
    data = data.replace(marked, prompt_versions[marked[1:-1]])
    if b"\x02" in data:  # other values in the group: one by one
        pieces = data.split(b"\x02")  # line start, prompt_versions, line end + line start, ...
        pieces[1::2] = map(prompt_versions.__getitem__, pieces[1::2])
        data = b"".join(pieces)
    return data.replace(b"\x03", b"\n")


def _pg_wait(pgconn, events: int) -> None:
    poller = select.poll()
    poller.register(pgconn.socket, events)
    poller.poll()


def _pg_next_result(pgconn):
    while pgconn.is_busy():
        _pg_wait(pgconn, select.POLLIN)
        pgconn.consume_input()
    return pgconn.get_result()


def _copy_out_rows(sql: str) -> Iterator[bytes]:
    """Run `COPY ... TO STDOUT` and yield its rows (each with its newline; buffers that libpq allocated).

    Reads through libpq's asynchronous API (psycopg.pq): one C call per COPY row, where psycopg's Copy.read() adds
    Python frames. The connection is left idle whatever happens: an abandoned COPY (client gone, a group taking the
    exact path) is read to its end, at most _PG_COPY_ROWS members. The last row is handed out once the COPY is done.
    """
    import psycopg
    from psycopg import pq

    pgconn = connection.connection.pgconn
    t0 = time.monotonic()
    with connection.wrap_database_errors:
        pgconn.send_query(sql.encode())
        while pgconn.flush():
            _pg_wait(pgconn, select.POLLOUT)
        result = _pg_next_result(pgconn)
        if result.status != pq.ExecStatus.COPY_OUT:
            while _pg_next_result(pgconn) is not None:
                pass
            raise psycopg.errors.error_from_result(result, encoding="utf-8")
        done = False
        pending = None
        try:
            get = pgconn.get_copy_data
            while True:
                nbytes, data = get(1)
                if nbytes > 0:
                    if pending is not None:
                        yield pending
                    pending = data
                elif nbytes == 0:  # nothing buffered: wait for the server
                    _pg_wait(pgconn, select.POLLIN)
                    pgconn.consume_input()
                elif nbytes == -1:
                    break
                else:
                    raise psycopg.OperationalError(pgconn.get_error_message())
            done = True
            error = None
            while (result := _pg_next_result(pgconn)) is not None:
                if result.status != pq.ExecStatus.COMMAND_OK:
                    error = psycopg.errors.error_from_result(result, encoding="utf-8")
            if error is not None:
                raise error
        finally:
            if not done:
                _copy_out_abandon(pgconn)
    if connection.queries_logged:  # like Django's debug cursor, so CaptureQueriesContext sees the COPY
        connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - t0:.3f}"})
    if pending is not None:
        yield pending


def _copy_out_abandon(pgconn) -> None:
    """Read an unfinished COPY to its end, so the connection can run the next query."""
    try:
        while (nbytes := pgconn.get_copy_data(1)[0]) != -1:
            if nbytes == 0:
                _pg_wait(pgconn, select.POLLIN)
                pgconn.consume_input()
            elif nbytes < -1:
                raise OSError(pgconn.get_error_message())
        while _pg_next_result(pgconn) is not None:
            pass
    except Exception:
        logger.warning("export: could not finish an abandoned COPY; closing the connection", exc_info=True)
        connection.close()


def _jsonl_stream_postgres(version: DatasetVersion, *, start: int) -> Iterator[bytes]:
    """COPY statements of growing size (up to _PG_COPY_ROWS members): while Python encodes a block, PostgreSQL
    writes the next ones. Groups are sized from the members read so far to about _PG_BLOCK_BYTES.

    Each COPY runs with sorts and JIT disabled for its transaction (SET LOCAL). Sorts: so that PostgreSQL reads
    the (version, position) index in order (left to itself it picked, depending on the table's statistics, the
    version_id index or a bitmap scan and then sorted the range on disk, or read the whole version for every range:
    measured 1.5x to 3x slower). JIT: the estimated cost of a large COPY is far above jit_above_cost, and compiling
    these few cheap expressions costs more than it saves (measured: +15% of PostgreSQL's CPU for 300,000 members)."""
    connection.ensure_connection()
    if not hasattr(connection.connection, "pgconn"):  # psycopg 2: no libpq API to read COPY with
        yield from jsonl_stream_portable(version, start=start)
        return
    line, marks_per_row = _pg_line()
    prompt_versions, scratch = _PromptVersions(), _Scratch()
    end = version.example_count
    pos, copy_rows = max(0, start), _PG_FIRST_COPY_ROWS
    group = max(1, min(_PG_GROUP_ROWS_MAX, _PG_BLOCK_BYTES // _PG_ROW_BYTES_GUESS))
    seen_rows = seen_bytes = 0
    while pos < end:
        hi = min(end, pos + min(copy_rows, _PG_COPY_ROWS))
        exact = None
        with transaction.atomic(using=connection.alias):  # a read; the transaction scopes SET LOCAL
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_sort = off")
                cursor.execute("SET LOCAL jit = off")
            rows_out = _copy_out_rows(_pg_copy_sql(version, pos, hi, group, line))
            try:
                expected = pos
                for view in rows_out:  # libpq's buffer (a memoryview)
                    g, rows, body = _pg_group_head(view)
                    if g != expected:
                        raise RuntimeError(f"export: COPY returned the group at {g}, expected {expected}")
                    expected = min(g + group, hi)
                    if not rows:
                        continue
                    data = bytes(view[body:])
                    seen_rows += rows
                    seen_bytes += len(data)
                    out = _pg_group_to_jsonl(data, rows, marks_per_row, prompt_versions, scratch)
                    if out is None:
                        exact = (g, expected)
                        break
                    yield out
            finally:
                rows_out.close()  # an unfinished COPY is read to its end now
        if exact is not None:
            yield from jsonl_stream_portable(version, start=exact[0], stop=exact[1])
            pos, copy_rows = exact[1], _PG_FIRST_COPY_ROWS
        else:
            if expected != hi:
                raise RuntimeError(f"export: COPY ended at group {expected}, expected {hi}")
            pos, copy_rows = hi, copy_rows * 4
        if seen_rows:
            group = max(1, min(_PG_GROUP_ROWS_MAX, _PG_BLOCK_BYTES * seen_rows // max(1, seen_bytes)))


_SQLITE_BOOL = "CASE WHEN {c} IS NULL THEN NULL WHEN {c} THEN json('true') ELSE json('false') END"


def _jsonl_stream_sqlite(version: DatasetVersion, *, start: int) -> Iterator[bytes]:
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
        for lo, hi in _ranges(version, start, CHUNK_ROWS):
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
            dumps(training_example(query=q, instruction=instr, passage_title=title, passage_text=text, reasoning=trace, label=label)) + "\n"
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


# ---------------------------------------------------------------- snapshots
#
# The export of a ready version in a format never changes, so it is materialized once into a file named after the
# version (content hash, id, creation time: the content hash alone does not cover ids and provenance, and a
# database restored elsewhere reuses ids) and the encoder revision. The first full export writes it while it
# streams (tee) into a temporary file that is fsynced and atomically renamed only once complete: an interrupted
# or failed export leaves no snapshot, and a reader never sees a partial one. A lock file per snapshot lets one
# request at a time write it (the others stream from the database); the lock only saves work, it is not needed
# for correctness, since every writer writes the same bytes to its own temporary file.

SNAPSHOT_REVISION = 1  # bump when an encoder's output changes: older snapshots are then ignored and pruned
_SNAPSHOT_NAME = re.compile(
    r"(?P<hash>[0-9a-f]{64})\.v(?P<pk>\d+)\.(?P<created>\d+)\.r(?P<rev>\d+)\.(?P<ext>[a-z0-9.]+)"
)
_PARTIAL_SUFFIX = ".partial"
_READ_BLOCK = 1 << 20


def snapshot_dir() -> Path:
    return Path(getattr(settings, "LIMRANK_EXPORT_SNAPSHOT_DIR", None) or Path(settings.VAR_DIR) / "exports")


def snapshot_path(version: DatasetVersion, fmt: str) -> Path | None:
    """Where the snapshot of this version and format lives; None when the version cannot have one."""
    if version.status != DatasetVersion.Status.READY or not re.fullmatch(r"[0-9a-f]{64}", version.content_hash or ""):
        return None
    created_us = int(version.created_at.timestamp() * 1_000_000)
    return snapshot_dir() / f"{version.content_hash}.v{version.pk}.{created_us}.r{SNAPSHOT_REVISION}.{EXTENSIONS[fmt]}"


def snapshot_open(version: DatasetVersion, fmt: str) -> BinaryIO | None:
    """The complete snapshot, opened unbuffered for reading (sendfile reads from its descriptor), or None."""
    path = snapshot_path(version, fmt)
    if path is None:
        return None
    try:
        return open(path, "rb", buffering=0)
    except FileNotFoundError:
        return None
    except OSError:  # an unusable snapshot directory: export from the database
        logger.warning("export snapshot: cannot open %s", path, exc_info=True)
        return None


_WRITE_AHEAD = 8  # chunks queued for a snapshot's writer thread (memory stays bounded by the chunk size)


class _SnapshotWriter:
    """A temporary file in the snapshot directory, renamed to the snapshot by commit(), removed by abort().

    Chunks are written by a thread of their own: a write is a kernel copy into the page cache, which then runs
    beside the export (it releases the GIL) instead of between its chunks. On this 2-core VM, writing a 1 GB
    export into pages the guest has not used yet took 2 to 2.5 s of CPU, against 0.2 s into recycled ones.
    """

    def __init__(self, path: Path, lock_fd: int | None):
        self.path = path
        self._lock_fd = lock_fd
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: OSError | None = None
        self._discard = False
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_PARTIAL_SUFFIX)
        try:
            os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide it from a front server (X-Accel-Redirect) run as another user
            self._file = os.fdopen(fd, "wb", buffering=0)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        self._tmp = Path(tmp)

    @classmethod
    def start(cls, path: Path, *, when_locked: str = "skip") -> _SnapshotWriter | None:
        """A writer for `path`, or None when the snapshot already exists or cannot be written. When another
        request holds the lock (it is writing the same snapshot): None for when_locked="skip", a writer of a
        private copy for when_locked="private" (same bytes, atomic rename: whichever lands last is identical)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(f"{path}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        except OSError:
            logger.warning("export snapshot: cannot create %s", path.parent, exc_info=True)
            return None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            if when_locked != "private":
                return None
            lock_fd = None
        try:
            if path.exists():
                raise FileExistsError(path)
            return cls(path, lock_fd)
        except OSError as exc:
            if not isinstance(exc, FileExistsError):
                logger.warning("export snapshot: cannot write %s", path, exc_info=True)
            if lock_fd is not None:
                cls._unlock(path, lock_fd, remove=isinstance(exc, FileExistsError))
            return None

    def write(self, data) -> None:
        """Queue a chunk (bytes: it must not change); raises the OSError that writing an earlier chunk raised."""
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._queue = queue.Queue(_WRITE_AHEAD)
            self._thread = threading.Thread(target=self._write_queued, name="export-snapshot-write", daemon=True)
            self._thread.start()
        self._queue.put(data)  # blocks while _WRITE_AHEAD chunks wait

    def _write_queued(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is not None or self._discard:
                continue  # keep taking chunks, so that write() and _drain() never wait forever
            try:
                view = memoryview(data)
                while view:
                    view = view[self._file.write(view):]
            except Exception as exc:  # disk full or the like: the next write() or commit() raises it
                self._error = exc if isinstance(exc, OSError) else OSError(f"snapshot write failed: {exc!r}")

    def _drain(self) -> None:
        """Wait for the writer thread to write (or, aborting, drop) every queued chunk, and end it."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def commit(self) -> None:
        committed = False
        try:
            self._drain()
            if self._error is not None:
                raise self._error
            os.fsync(self._file.fileno())  # the data is on disk before the name says it is complete
            self._file.close()
            os.replace(self._tmp, self.path)
            committed = True
        finally:
            if not committed:
                self._file.close()
                self._tmp.unlink(missing_ok=True)
            self._release(remove_lock=committed)

    def abort(self) -> None:
        self._discard = True
        try:
            self._drain()
        finally:
            self._abort()

    def _abort(self) -> None:
        try:
            self._file.close()
        finally:
            try:
                self._tmp.unlink(missing_ok=True)
            finally:
                self._release(remove_lock=False)  # the next full export writes it

    def _release(self, *, remove_lock: bool) -> None:
        if self._lock_fd is not None:
            self._unlock(self.path, self._lock_fd, remove=remove_lock)
            self._lock_fd = None

    @staticmethod
    def _unlock(path: Path, lock_fd: int, *, remove: bool) -> None:
        # Removed while still held, once the snapshot exists: a request that opened it before only fails to lock it
        # (and streams from the database); no lock file is left per snapshot.
        try:
            if remove:
                Path(f"{path}.lock").unlink(missing_ok=True)
        finally:
            os.close(lock_fd)  # closing the descriptor releases the flock


_commits: set[threading.Thread] = set()
_commits_lock = threading.Lock()


def _commit_in_background(writer: _SnapshotWriter) -> None:
    """fsync + rename off the request: fsyncing a 1 GB snapshot takes seconds, which neither the client (an HTTP/1.0
    one waits for the connection to close) nor the worker's next request should wait for. The lock stays held
    until the rename; a worker that exits first leaves only a temporary file (prune_export_snapshots removes it)."""

    def run():
        try:
            writer.commit()
        except OSError:
            logger.warning("export snapshot: commit failed for %s", writer.path, exc_info=True)
        finally:
            with _commits_lock:
                _commits.discard(thread)

    thread = threading.Thread(target=run, name="export-snapshot-commit", daemon=True)
    with _commits_lock:
        _commits.add(thread)
    thread.start()


def snapshot_commits_wait(timeout: float | None = None) -> None:
    """Wait for the snapshots being committed in the background (tests, and a clean shutdown)."""
    with _commits_lock:
        pending = list(_commits)
    for thread in pending:
        thread.join(timeout)


class _Tee:
    """Iterate over the chunks and write them to the snapshot. The snapshot is committed (fsync, rename) by close(),
    which the WSGI server calls after the last chunk, in the background unless background=False. Closed early
    (client gone, error), it removes the temporary file."""

    def __init__(self, chunks: Iterator[bytes], writer: _SnapshotWriter, *, background: bool = True):
        self._chunks = chunks
        self._writer: _SnapshotWriter | None = writer
        self._complete = False
        self._background = background

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._complete = True
            raise
        if self._writer is not None:
            try:
                self._writer.write(chunk)
            except OSError:  # disk full or the like: the export goes on without a snapshot
                logger.warning("export snapshot: write failed for %s", self._writer.path, exc_info=True)
                self._writer.abort()
                self._writer = None
        return chunk

    def close(self) -> None:
        writer, self._writer = self._writer, None
        try:
            if hasattr(self._chunks, "close"):
                self._chunks.close()  # the source's own cleanup (a COPY in progress) runs now, not at garbage collection
        finally:
            if writer is not None and self._complete and self._background:
                _commit_in_background(writer)
            elif writer is not None and self._complete:
                try:
                    writer.commit()
                except OSError:
                    logger.warning("export snapshot: commit failed for %s", writer.path, exc_info=True)
            elif writer is not None:
                writer.abort()


class _Snapshotting:
    """export_stream(); a full export (start 0) also writes the snapshot, unless another request is writing it.
    The lock is taken when the response starts to stream (not when the view returns it); close() commits."""

    def __init__(self, version: DatasetVersion, fmt: str, start: int):
        self._args = (version, fmt, start)
        self._it: Iterator[bytes] | None = None

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        if self._it is None:
            version, fmt, start = self._args
            chunks = export_stream(version, fmt, start=start)
            path = snapshot_path(version, fmt) if start == 0 else None
            writer = _SnapshotWriter.start(path) if path is not None else None
            background = getattr(settings, "LIMRANK_EXPORT_SNAPSHOT_BACKGROUND_COMMIT", True)
            self._it = chunks if writer is None else _Tee(chunks, writer, background=background)
        return next(self._it)

    def close(self) -> None:
        if self._it is not None and hasattr(self._it, "close"):
            self._it.close()


def export_stream_snapshotting(version: DatasetVersion, fmt: str, *, start: int = 0) -> _Snapshotting:
    """The export as an iterable of chunks for a streaming response, which writes the snapshot of a full export
    (committed after the response is closed, after its last chunk; see _commit_in_background)."""
    return _Snapshotting(version, fmt, start)


def snapshot_build(version: DatasetVersion, fmt: str) -> BinaryIO | None:
    """Materialize the snapshot now (without a client to stream to) and open it; None if it cannot be written.

    For requests that need the export's size first (byte ranges, HEAD). When another request is writing the
    snapshot, this one writes its own copy rather than wait on a download of unknown speed.
    """
    existing = snapshot_open(version, fmt)
    if existing is not None:
        return existing
    path = snapshot_path(version, fmt)
    writer = _SnapshotWriter.start(path, when_locked="private") if path is not None else None
    if writer is None:
        return snapshot_open(version, fmt)
    tee = _Tee(export_stream(version, fmt), writer, background=False)
    try:
        for _ in tee:
            pass
    finally:
        tee.close()
    return snapshot_open(version, fmt)


def snapshot_row_position(file: BinaryIO, row: int) -> int:
    """Byte offset of row `row` (0-based) in a JSON-lines snapshot: its size when the file has fewer rows."""
    if row <= 0:
        return 0
    file.seek(0)
    seen = pos = 0
    while chunk := file.read(_READ_BLOCK):
        n = chunk.count(b"\n")
        if seen + n >= row:
            index = -1
            for _ in range(row - seen):
                index = chunk.index(b"\n", index + 1)
            return pos + index + 1
        seen += n
        pos += len(chunk)
    return pos


def export_snapshots_prune(*, everything: bool = False, partial_age_s: float = 3600.0) -> dict[str, int]:
    """Delete snapshots no ready version uses any more (deleted versions, older encoder revisions), lock files no
    writer holds, and temporary files untouched for partial_age_s (a killed worker's); with `everything`, every
    snapshot. Returns counts and bytes freed."""
    root = snapshot_dir()
    stats = {"snapshots": 0, "partials": 0, "locks": 0, "bytes": 0}
    if not root.is_dir():
        return stats
    live: set[str] = set()
    if not everything:
        for version in DatasetVersion.objects.filter(status=DatasetVersion.Status.READY).only("pk", "content_hash", "created_at", "status"):
            live.update(p.name for fmt in FORMATS if (p := snapshot_path(version, fmt)) is not None)
    now = time.time()
    for entry in root.iterdir():
        name = entry.name
        try:
            if name.endswith(_PARTIAL_SUFFIX):
                if now - entry.stat().st_mtime < partial_age_s:
                    continue  # a writer is filling it (every write moves its mtime)
                kind = "partials"
            elif name.endswith(".lock"):
                fd = os.open(entry, os.O_RDWR)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a writer: keep it
                except BlockingIOError:
                    continue
                finally:
                    os.close(fd)
                kind = "locks"
            elif _SNAPSHOT_NAME.fullmatch(name):
                if name in live:
                    continue
                kind = "snapshots"
            else:
                continue  # not ours
            size = entry.stat().st_size
            entry.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                logger.warning("export snapshot prune: cannot delete %s", entry)
                continue
            raise
        stats[kind] += 1
        stats["bytes"] += size
    return stats
