"""The queue's first candidate window is sized to the claims held right now instead of 256 ids.

Reviewers work at the front of the queue, so the pages under the first window change with every decision and
the index-only scan reads nearly every id of the window from the table (measured: 250 heap fetches for 256 ids,
0.27 ms of a claim). Others' live claims are what a window must reach past: the first window is their count + 16
(32 to 256), later windows 256 as before. The function is migration 0003's with these lines changed (asserted).
"""
import importlib

from django.db import migrations

_0003 = importlib.import_module("curation.migrations.0003_review_pg_functions")

_CHANGES = [
    ("    v_try integer;\n", "    v_try integer;\n    v_first integer;\n    v_size integer;\n"),
    ("        <<tries>>\n",
     "        -- The first window: the examples others hold right now (they sit at the front), and some to spare.\n"
     "        SELECT LEAST(GREATEST(count(*)::integer + 16, 32), 256) INTO v_first\n"
     "        FROM curation_reviewclaim c WHERE c.expires_at > p_now;\n"
     "        <<tries>>\n"),
    ("                v_after := 0;\n                LOOP\n", "                v_after := 0;\n                v_size := v_first;\n                LOOP\n"),
    ("ORDER BY x.id LIMIT 256);", "ORDER BY x.id LIMIT v_size);"),
    ("                        v_after := v_window[cardinality(v_window)];\n                        CONTINUE;\n",
     "                        v_after := v_window[cardinality(v_window)];\n                        v_size := 256;\n                        CONTINUE;\n"),
]


def _claim_next_sql() -> str:
    sql = _0003.CLAIM_NEXT
    for old, new in _CHANGES:
        assert old in sql, old
        sql = sql.replace(old, new)
    return sql


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_claim_next_sql())


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_0003.CLAIM_NEXT)


class Migration(migrations.Migration):
    dependencies = [("curation", "0005_member_version_index")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
