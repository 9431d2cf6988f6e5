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

from curation.formats import rank1_example
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


# ---- PostgreSQL: COPY streams the rows; Python turns each ~1 MB block into JSON lines with a few C-speed bytes
# operations per block and no Python loop per field.
#
# Each row is three COPY columns: C1 = every field before prompt_versions with its JSON glue (keys, commas, colons),
# PV = prompt_versions as jsonb text, C2 = the fields after it with their glue (concatenated in SQL).
# COPY's text format escapes a field's backslash, \n, \r, \t, \b and \f exactly as JSON does, but not double quotes:
# the SQL writes each structural quote as the byte \x01 (COPY leaves control bytes raw), so Python escapes every
# raw quote of the block (the data's) and then turns \x01 into quotes. A block is converted this way only when
# its control bytes are exactly the expected markers, tabs and newlines (so no data byte is a raw control character,
# a \x01 included) and it holds no \v escape (not JSON); any other block is re-read and encoded by the portable
# encoder after its COPY ends, so every row equals the portable path's, byte for byte (tests compare).
# prompt_versions is the one field whose quotes are JSON's own: its values are few and repeat, so each distinct
# (escaped) value is decoded once and re-encoded exactly like the portable encoder does.

_PG_TEXT = frozenset({"query_text", "instruction", "passage_title", "passage_text", "reasoning_trace", "origin", "variant",
                      "domain", "reasoner_model", "content_hash"})
_PV = FIELDS.index("prompt_versions")
_MARK = "\x01"
_PG_COPY_ROWS = 10_000  # rows per COPY statement (see _jsonl_stream_postgres)
_PG_BLOCK_BYTES = 1 << 20
_PV_CACHE_MAX = 10_000
_COPY_ESCAPE = re.compile(rb"\\(.)")
_COPY_UNESCAPE = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v", b"\\": b"\\"}


def _pg_literal(text: str) -> str:
    return "E'" + text.replace("\\", "\\\\").replace("'", "\\'").replace(_MARK, "\\x01") + "'"


def _pg_value(f: str, q) -> str:
    if f == "label":
        return f"CASE WHEN {q(f)} THEN 'true' ELSE 'false' END"
    if f == "reasoner_judgment":
        return f"CASE WHEN {q(f)} IS NULL THEN 'null' WHEN {q(f)} THEN 'true' ELSE 'false' END"
    if f in _PG_TEXT:
        return q(f)  # NOT NULL columns: || would turn a NULL into a NULL row
    return f"{q(f)}::text"


def _pg_glued(fields, q, *, opening: str, closing: str) -> str:
    """Each field preceded by its glue, a \x01 for every quote the glue needs, joined with || (cheaper for
    PostgreSQL than concat(), which looks up an output function per argument and row)."""
    parts, sep = [], opening
    for f in fields:
        quote = _MARK if f in _PG_TEXT else ""
        parts += [_pg_literal(f"{sep}{_MARK}{f}{_MARK}:{quote}"), _pg_value(f, q)]
        sep = quote + ","
    parts.append(_pg_literal(sep[:-1] + closing))
    return " || ".join(parts)


def _pg_copy_select() -> tuple[str, int]:
    """The three COPY columns, and the control bytes each COPY row holds (markers, two tabs, the newline)."""
    q = connection.ops.quote_name
    c1 = _pg_glued(FIELDS[:_PV], q, opening="{", closing=f",{_MARK}prompt_versions{_MARK}:")
    c2 = _pg_glued(FIELDS[_PV + 1:], q, opening=",", closing="}")
    markers = (c1 + c2).count("\\x01")
    return f"{c1}, COALESCE({q('prompt_versions')}::text, 'null'), {c2}", markers + 3


def _copy_unescape(field: bytes) -> bytes:
    return _COPY_ESCAPE.sub(lambda m: _COPY_UNESCAPE.get(m.group(1), m.group(1)), field)


class _PromptVersions(dict):
    """Escaped COPY text of a prompt_versions value -> its portable JSON encoding (computed once per value)."""

    def __missing__(self, escaped: bytes) -> bytes:
        if len(self) >= _PV_CACHE_MAX:
            self.clear()
        # Undo the block-wide quote escaping (every quote got one backslash), then COPY's backslash doubling.
        jsonb_text = _copy_unescape(escaped.replace(b'\\"', b'"'))
        value = self[escaped] = _dumps(json.loads(jsonb_text)).encode("utf-8")
        return value


def _pg_block_to_jsonl(block: bytes, rows: int, control_per_row: int, prompt_versions: _PromptVersions) -> bytes | None:
    """Whole COPY rows -> JSON lines, or None when the block must take the exact path."""
    import numpy as np

    a = np.frombuffer(block, dtype=np.uint8)
    if int(np.count_nonzero(a < 0x20)) != rows * control_per_row:
        return None  # a raw control character in the data
    backslashes = np.flatnonzero(a == 0x5C)
    if backslashes.size:
        for i in backslashes[a[backslashes + 1] == 0x76].tolist():  # "\v": COPY's vertical tab, or "\\" + "v"
            run = i
            while run > 0 and block[run - 1] == 0x5C:
                run -= 1
            if (i - run) % 2 == 0:  # an even number of backslashes before it: this one starts an escape
                return None
    if b'"' in block:
        block = block.replace(b'"', b'\\"')
    pieces = block.replace(b"\x01", b'"').split(b"\t")  # C1, PV, C2+newline+C1, PV, ...
    pieces[1::2] = map(prompt_versions.__getitem__, pieces[1::2])
    return b"".join(pieces)


def _first_position(line_start: bytes) -> int:
    head = f"{{{_MARK}position{_MARK}:".encode()
    return int(line_start[len(head): line_start.index(b",", len(head))])


def _pg_wait(pgconn, events: int) -> None:
    poller = select.poll()
    poller.register(pgconn.socket, events)
    poller.poll()


def _pg_next_result(pgconn):
    while pgconn.is_busy():
        _pg_wait(pgconn, select.POLLIN)
        pgconn.consume_input()
    return pgconn.get_result()


def _copy_out_blocks(sql: str) -> Iterator[tuple[bytes, int]]:
    """Run `COPY ... TO STDOUT` and yield (whole rows joined, number of rows), about _PG_BLOCK_BYTES at a time.

    Reads through libpq's asynchronous API (psycopg.pq): one C call per row, where psycopg's Copy.read() spends
    about 0.5 us more per row in Python frames (measured: 1.3 vs 1.9 s of CPU to read 1M rows). The connection is
    left idle whatever happens: an abandoned COPY (client gone) is read to its end, at most _PG_COPY_ROWS rows.
    """
    import psycopg
    from psycopg import pq

    pgconn = connection.connection.pgconn
    block_bytes = _PG_BLOCK_BYTES
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
        try:
            get, parts, size = pgconn.get_copy_data, [], 0
            while True:
                nbytes, data = get(1)
                if nbytes > 0:
                    parts.append(data)
                    size += nbytes
                    if size >= block_bytes:
                        block, n = b"".join(parts), len(parts)
                        parts.clear()
                        size = 0
                        yield block, n
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
    if parts:  # the connection is idle again before the last block is handed out
        yield b"".join(parts), len(parts)


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
    """One COPY per _PG_COPY_ROWS positions, which bounds what is held back behind a block that takes the exact
    path (re-read once the COPY is done). Each COPY runs with sorts disabled for its transaction (SET LOCAL), so
    PostgreSQL reads the (version, position) index in order: left to itself it picked, depending on the table's
    statistics, the version_id index or a bitmap scan and then sorted the range on disk, or even read the whole
    version for every range (measured: 1.5x to 3x slower)."""
    connection.ensure_connection()
    if not hasattr(connection.connection, "pgconn"):  # psycopg 2: no libpq API to read COPY with
        yield from jsonl_stream_portable(version, start=start)
        return
    q = connection.ops.quote_name
    select_sql, control_per_row = _pg_copy_select()
    table = q(DatasetVersionMember._meta.db_table)
    prompt_versions = _PromptVersions()
    for lo, hi in _ranges(version, start, _PG_COPY_ROWS):
        sql = (
            f"COPY (SELECT {select_sql} FROM {table} WHERE version_id = {int(version.pk)} "
            f"AND {q('position')} >= {lo} AND {q('position')} < {hi} ORDER BY {q('position')}) TO STDOUT"
        )
        # Blocks after one that takes the exact path wait here until the COPY ends (the connection is busy until then).
        held: list[bytes | tuple[int, int]] = []
        with transaction.atomic(using=connection.alias):  # a read; the transaction scopes SET LOCAL
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_sort = off")
            for block, rows in _copy_out_blocks(sql):
                out = _pg_block_to_jsonl(block, rows, control_per_row, prompt_versions)
                if out is None:
                    last_line = block.rfind(b"\n", 0, len(block) - 1) + 1
                    held.append((_first_position(block), _first_position(block[last_line:])))
                elif held:
                    held.append(out)
                else:
                    yield out
        for item in held:
            if isinstance(item, tuple):
                yield from jsonl_stream_portable(version, start=item[0], stop=item[1] + 1)
            else:
                yield item


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


class _SnapshotWriter:
    """A temporary file in the snapshot directory, renamed to the snapshot by commit(), removed by abort()."""

    def __init__(self, path: Path, lock_fd: int | None):
        self.path = path
        self._lock_fd = lock_fd
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
        view = memoryview(data)
        while view:
            view = view[self._file.write(view):]

    def commit(self) -> None:
        committed = False
        try:
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
