"""The queue functions: planned once per connection, index scans on the claims, no review probe when none can exist.

Measured on the 1M-example bench database (PostgreSQL 15), 8 direct clients claiming and submitting:
574 -> 775 cycles/s and PostgreSQL CPU 2.41 -> 1.77 ms per cycle from the first two changes (pg_stat_statements:
a claim 1,746 -> 985 us).

- plan_cache_mode=force_generic_plan. PL/pgSQL keeps a plan per statement, but with the default (auto) a statement
  with parameters is planned anew with their values whenever the planner rates the generic plan no better: the
  queue's statements were planned on every call (one client: PostgreSQL CPU per claim 1.67 -> 0.83 ms).
- enable_bitmapscan=off, enable_seqscan=off. A claim is deleted when its review is submitted, and the deleted rows
  stay in the claims' table and indexes until VACUUM. A bitmap scan visits every one of them (the deleted claims of
  the last 15 minutes all still match "expires_at > now") and never marks them dead; a sequential scan (chosen when
  the statistics say the table is small) reads them all. A plain index scan marks them dead, so the next scan skips
  them (counting live claims: 156 -> 27 us per call under load).
- A reviewer's own live review of an example is looked for only when the example has a live review at all
  (reviews_done > 0: it counts them, see services.review): at one review per example the probe never runs, and where
  it runs it is a per-candidate probe (OFFSET 0 keeps NOT EXISTS from becoming an anti-join through all of the
  reviewer's reviews, whatever the statistics say). Candidate query under load: 326 -> 98 us per call.
Migrations 0003 and 0006 hold the rest of the SQL; the lines changed here are asserted.
"""
import importlib

from django.db import migrations

_0003 = importlib.import_module("curation.migrations.0003_review_pg_functions")
_0006 = importlib.import_module("curation.migrations.0006_review_claim_window")

SETTINGS = ("SET plan_cache_mode = force_generic_plan  -- plan once per connection (migration 0007)\n"
            "SET enable_bitmapscan = off  -- index scans mark deleted claims' entries dead (migration 0007)\n"
            "SET enable_seqscan = off  -- nor read every deleted claim still in the table (migration 0007)\n")

_CLAIM_CHANGES = [
    ("SET jit = off", SETTINGS + "SET jit = off", 1),
    # Every NOT EXISTS over the reviewer's reviews: the resumed claim, the candidate and the two "anything left?" probes.
    ("AND NOT EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = c.example_id",
     "AND (e.reviews_done = 0 OR NOT EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = c.example_id", 1),
    ("AND NOT EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = e.id",
     "AND (e.reviews_done = 0 OR NOT EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = e.id", 3),
    ("AND NOT r.undone AND NOT r.is_adjudication)", "AND NOT r.undone AND NOT r.is_adjudication OFFSET 0))", 4),
]
_SUBMIT_CHANGES = [
    ("LANGUAGE plpgsql VOLATILE AS $fn$", "LANGUAGE plpgsql VOLATILE\n" + SETTINGS + "AS $fn$", 1),
    ("    IF EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = p_example",
     "    IF v_done > 0 AND EXISTS (SELECT 1 FROM curation_review r WHERE r.example_id = p_example", 1),
]


def _changed(sql: str, changes) -> str:
    for old, new, count in changes:
        assert sql.count(old) == count, (old, sql.count(old))
        sql = sql.replace(old, new)
    return sql


def claim_next_sql() -> str:
    return _changed(_0006._claim_next_sql(), _CLAIM_CHANGES)


def submit_sql() -> str:
    return _changed(_0003.SUBMIT, _SUBMIT_CHANGES)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(claim_next_sql())
        schema_editor.execute(submit_sql())


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_0006._claim_next_sql())
        schema_editor.execute(_0003.SUBMIT)


class Migration(migrations.Migration):
    dependencies = [("curation", "0006_review_claim_window")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
