"""Bulk inserts (issue 21): one implementation for imports and version builds.

PostgreSQL: `COPY table (columns) FROM STDIN` through psycopg's `cursor.copy()`, rows streamed as they are produced
(no INSERT statement built, no model objects). Ids, when the caller needs them (to point examples at the queries and
passages just written), are taken from the table's sequence first, so the rows are copied with them.
Elsewhere (SQLite): `bulk_create` in batches of BULK_BATCH, model objects built from the same rows.

Both run inside the caller's transaction: a failure (a constraint, a bad value) rolls the whole write back, as Django's
own database errors (IntegrityError, DataError, ...). Columns the caller does not name get the model's defaults
(`auto_now`/`auto_now_add`: the time of the call)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection, models
from django.utils import timezone

BULK_BATCH = 2_000


def bulk_method() -> str:
    """"copy" on PostgreSQL, "bulk_create" elsewhere."""
    return "copy" if connection.vendor == "postgresql" else "bulk_create"


def bulk_ids_reserve(*, model: type[models.Model], n: int) -> list[int]:
    """n fresh primary keys from the table's sequence (PostgreSQL), in increasing order."""
    if n <= 0:
        return []
    with connection.cursor() as cur:
        cur.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s) ORDER BY 1",
                    [model._meta.db_table, model._meta.pk.column, n])
        return [r[0] for r in cur.fetchall()]


def bulk_statistics_refresh(*, models_: Sequence[type[models.Model]]) -> None:
    """ANALYZE the models' tables (PostgreSQL; a no-op elsewhere). Inside a transaction ANALYZE samples the rows
    that transaction wrote, so a long write can take its own statistics: without them the planner guesses, and for
    rows just copied in it guesses badly (`query_id IS NULL` estimated at a few hundred rows, so each hash lookup
    scanned every imported passage through the query_id index and an import grew quadratic in its size).
    Its lock (SHARE UPDATE EXCLUSIVE) is held until the caller commits: reads and writes go on, but a second long
    import waits at its first ANALYZE for the first to commit (it already waited on any example both import: content
    hashes are unique)."""
    if connection.vendor != "postgresql":
        return
    qn = connection.ops.quote_name
    with connection.cursor() as cur:
        for model in models_:
            cur.execute(f"ANALYZE {qn(model._meta.db_table)}")


def _defaults(model: type[models.Model], named: Sequence[str]) -> list[tuple[models.Field, object]]:
    """(field, value) for every concrete column the caller leaves out (the primary key aside)."""
    now = timezone.now()
    out = []
    for f in model._meta.concrete_fields:
        if f.primary_key or f.attname in named:
            continue
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            out.append((f, now))
        else:
            out.append((f, f.get_default()))
    return out


def bulk_insert(*, model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence],
                ids: bool = False, count: int | None = None) -> list[int] | int:
    """Insert `rows` (tuples of the values of `fields`, attnames such as "query_id") into the model's table.
    With ids=True returns the new primary keys in row order (`rows` must then be a sequence, or `count` given);
    otherwise the number of rows written."""
    if ids and count is None:
        rows = list(rows)
        count = len(rows)
    if connection.vendor != "postgresql":
        return _bulk_create(model=model, fields=fields, rows=rows, ids=ids)
    return _copy(model=model, fields=fields, rows=rows, ids=bulk_ids_reserve(model=model, n=count) if ids else None)


def _copy(*, model, fields, rows, ids: list[int] | None) -> list[int] | int:
    meta = model._meta
    by_attname = {f.attname: f for f in meta.concrete_fields}
    named = [by_attname[a] for a in fields]
    defaults = _defaults(model, fields)
    columns = ([meta.pk] if ids is not None else []) + named + [f for f, _ in defaults]
    qn = connection.ops.quote_name
    sql = f"COPY {qn(meta.db_table)} ({', '.join(qn(f.column) for f in columns)}) FROM STDIN"
    # JSON values go through the field (psycopg's Jsonb); everything else psycopg adapts as it is.
    json_at = [i for i, f in enumerate(named) if isinstance(f, models.JSONField)]
    tail = tuple(f.get_db_prep_save(v, connection) for f, v in defaults)
    written = 0
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cur:
        with cur.copy(sql) as copy:
            for row in rows:
                if json_at:
                    row = list(row)
                    for i in json_at:
                        row[i] = named[i].get_db_prep_save(row[i], connection)
                head = (ids[written],) if ids is not None else ()
                copy.write_row((*head, *row, *tail))
                written += 1
    if ids is not None and written != len(ids):
        raise ValueError(f"bulk_insert: {len(ids)} ids reserved for {written} rows")
    return ids if ids is not None else written


def _bulk_create(*, model, fields, rows, ids: bool) -> list[int] | int:
    pks: list[int] = []
    written = 0
    batch: list = []

    def flush():
        nonlocal written
        created = model.objects.bulk_create(batch, batch_size=BULK_BATCH)
        written += len(created)
        if ids:
            pks.extend(o.pk for o in created)
        batch.clear()

    for row in rows:
        batch.append(model(**dict(zip(fields, row))))
        if len(batch) >= BULK_BATCH:
            flush()
    if batch:
        flush()
    return pks if ids else written


def bulk_reviews_insert_select(*, example_ids: Sequence[int], reviewer_id: int, decision: str, reason: str,
                               is_adjudication: bool, now) -> int:
    """One review per example, by one reviewer, written by the database itself (INSERT ... SELECT from the examples:
    no row built in Python). PostgreSQL: one statement over the id array; elsewhere in chunks of bound variables."""
    edits = "'{}'::jsonb" if connection.vendor == "postgresql" else "'{}'"
    head = f"""INSERT INTO curation_review (example_id, reviewer_id, decision, edits, reason, reason_code, seconds_spent,
                   is_adjudication, undone, created_at)
               SELECT e.id, %s, %s, {edits}, %s, NULL, 0, %s, %s, %s FROM curation_example e WHERE """
    params = [reviewer_id, decision, reason, is_adjudication, False, now]
    written = 0
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(head + "e.id = ANY(%s)", [*params, list(example_ids)])
            return cur.rowcount
        for start in range(0, len(example_ids), 500):
            chunk = list(example_ids[start:start + 500])
            cur.execute(head + f"e.id IN ({', '.join(['%s'] * len(chunk))})", [*params, *chunk])
            written += cur.rowcount
    return written
