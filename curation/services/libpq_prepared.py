"""The review queue's hot statements through libpq itself (psycopg.pq): prepared once per connection, executed in one
blocking libpq call that holds no GIL while PostgreSQL works, parameters and results in text form.

Why: psycopg's cursor drives the protocol from Python (a generator stepped between polls, holding the GIL at each
step), which cost 120 us of client CPU per claim against 76 us here, and under the review bench's load it was a
sixth of a gunicorn worker's GIL time (py-spy --gil; bench/RESULTS.md, session 5). Only for a statement that is a
transaction of its own (Django in autocommit): psycopg opens a caller's transactions itself, which a statement
sent past it would not be part of. The callers convert the text values (`text_row`)."""
from __future__ import annotations

import re
from datetime import datetime

from psycopg import errors, pq

_PLACEHOLDER = re.compile(r"%s")


def _numbered(sql: str) -> bytes:
    """Django/psycopg's %s placeholders as PostgreSQL's $1, $2, ... (the hot statements have no other % in them)."""
    assert "%%" not in sql and "%(" not in sql, sql
    count = iter(range(1, 1000))
    return _PLACEHOLDER.sub(lambda _: f"${next(count)}", sql).encode()


def _text(value) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat().encode()
    if isinstance(value, bool):
        return b"t" if value else b"f"
    return str(value).encode()


def libpq_fetchone(db, sql: str, params: list) -> list[bytes | None] | None:
    """The first row of `sql` run with `params` on Django connection `db` (in autocommit), as text values."""
    db.ensure_connection()
    raw = db.connection
    kept = getattr(db, "_limrank_prepared", None)
    if kept is None or kept[0] is not raw:  # a new connection has none of them
        kept = db._limrank_prepared = (raw, {})
    pgconn, names, values = raw.pgconn, kept[1], [_text(v) for v in params]
    name = names.get(sql)
    if name is None:
        name = names[sql] = _prepare(pgconn, raw, sql, f"limrank_{len(names) + 1}".encode())
    try:
        result = _check(pgconn.exec_prepared(name, values), raw)
    except errors.InvalidSqlStatementName:  # deallocated behind our back (DISCARD ALL, a pooler): prepare it again
        _prepare(pgconn, raw, sql, name)
        result = _check(pgconn.exec_prepared(name, values), raw)
    if result.ntuples == 0:
        return None
    return [result.get_value(0, col) for col in range(result.nfields)]


def _prepare(pgconn, raw, sql: str, name: bytes) -> bytes:
    _check(pgconn.prepare(name, _numbered(sql)), raw)
    return name


def _check(result, raw):
    if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        raise errors.error_from_result(result, encoding=raw.info.encoding)
    return result


def as_int(value: bytes | None) -> int | None:
    return None if value is None else int(value)


def as_float(value: bytes | None) -> float | None:
    return None if value is None else float(value)


def as_bool(value: bytes | None) -> bool | None:
    return None if value is None else value == b"t"


def as_str(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def as_datetime(value: bytes | None) -> datetime | None:
    """timestamptz in PostgreSQL's ISO output ('2026-12-02 06:35:42.7432+00'; Django sets the session's time zone)."""
    return None if value is None else datetime.fromisoformat(value.decode())


def text_row(values: list[bytes | None], converters) -> list:
    return [convert(value) for convert, value in zip(converters, values)]
