"""Streaming export: every field in JSONL, Rank1 training rows, parquet read back by `datasets`, ETag/304,
resume, and memory that does not grow with the version's size. Snapshots and byte ranges: test_export_snapshots.py."""
from __future__ import annotations

import json
import tracemalloc

import pytest
from django.db import connection

from curation import exports
from curation.protocol import INSTRUCTION as RANK1_INSTRUCTION, prompt_build
from curation.models import DatasetVersionMember
from curation.services.datasets import version_content_hash
from tests import factories
from tests.curation.api.conftest import make_examples

pytestmark = pytest.mark.django_db


def _db_rows(version) -> list[dict]:
    return [dict(zip(exports.FIELDS, r)) for r in DatasetVersionMember.objects.filter(version=version).order_by("position").values_list(*exports.FIELDS)]


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def _rows(body: bytes) -> list[dict]:
    # Split on newlines only: str.splitlines() would also split inside strings holding U+2028 or \x1c.
    assert body == b"" or body.endswith(b"\n")
    return [json.loads(line) for line in body.split(b"\n")[:-1]]


def test_jsonl_has_every_field_in_order(version, admin_api):
    r = admin_api.get(f"/api/dataset-versions/{version.pk}/export/?format=jsonl")
    assert r.status_code == 200 and r["Content-Type"].startswith("application/x-ndjson")
    assert r["ETag"] == f'"{version.content_hash}"' and r["X-Row-Count"] == "32"
    assert r["Content-Disposition"] == 'attachment; filename="export-me-v1.jsonl"'
    rows = _rows(_body(r))
    assert rows == _db_rows(version)
    assert list(rows[0]) == list(exports.FIELDS)
    # A client verifies the download against the ETag with the documented hash.
    assert version_content_hash(row["content_hash"] for row in rows) == version.content_hash


def test_default_format_is_jsonl_and_resume_with_offset(version, admin_api):
    full = _body(admin_api.get(f"/api/dataset-versions/{version.pk}/export/")).splitlines()
    tail = admin_api.get(f"/api/dataset-versions/{version.pk}/export/?format=jsonl&offset=30")
    assert tail["X-Row-Count"] == "2"
    assert _body(tail).splitlines() == full[30:]
    assert admin_api.get(f"/api/dataset-versions/{version.pk}/export/?offset=-1").status_code == 400
    bad = admin_api.get(f"/api/dataset-versions/{version.pk}/export/?format=parquet&offset=3")
    assert bad.status_code == 400 and bad["Content-Type"] == "application/json" and "offset" in bad.json()


@pytest.mark.parametrize("blocks", ["default", "small"])
def test_database_and_portable_jsonl_encoders_agree(version, blocks, request, exact_path_blocks):
    """The database's fast path encodes rows in SQL (SQLite) or from COPY blocks (PostgreSQL); whatever the
    database, rows equal the portable Python encoder's, and on PostgreSQL so do the bytes."""
    if blocks == "small":
        request.getfixturevalue("small_blocks")
    # An odd chunk size: ranges must not skip or repeat rows.
    portable_bytes = b"".join(exports.jsonl_stream_portable(version, chunk=7))
    served_bytes = b"".join(exports.jsonl_stream(version))
    portable = _rows(portable_bytes)
    served = _rows(served_bytes)
    assert served == portable == _db_rows(version)
    if connection.vendor == "postgresql":
        assert served_bytes == portable_bytes
        assert b"".join(exports.jsonl_stream(version, start=9)) == b"".join(exports.jsonl_stream_portable(version, start=9))
        assert not [call for call in exact_path_blocks if call[1] is not None]  # every block took the fast path
    assert b"".join(exports.jsonl_stream(version, start=31)).count(b"\n") == 1


@pytest.fixture
def exact_path_blocks(monkeypatch):
    """Position ranges the PostgreSQL fast path handed to the exact (portable) encoder."""
    calls = []
    portable = exports.jsonl_stream_portable

    def spy(version, *, start=0, stop=None, chunk=None):
        calls.append((start, stop))
        return portable(version, start=start, stop=stop, chunk=chunk)

    monkeypatch.setattr(exports, "jsonl_stream_portable", spy)
    return calls


@pytest.mark.parametrize("nasty, exact", [
    ('quote " backslash \\ tab \t newline \n cr \r backspace \b form feed \f DEL \x7f', False),
    ('looks like glue ","instruction":" then \\" and a trailing backslash \\', False),
    ("unicode é 漢字 🙂 \u2028 \x85 and literals: backslash-n \\n, backslash-v \\v, two then v \\\\v", False),
    ("", False),
    # COPY writes these unlike JSON (\v, raw control characters): the PostgreSQL path rewrites them in the block.
    ("vertical tab \v", False),
    ("backslash then vertical tab \\\v and \\\\\v", False),
    ("bell \x07, escape \x1b, unit separator \x1f; every control character but the markers: " + "".join(map(chr, range(4, 32))), False),
    # The bytes the PostgreSQL path marks quotes, prompt_versions and line ends with: the exact path.
    ("start of heading \x01 (the byte the PostgreSQL path marks quotes with) \x01,\x01instruction\x01:\x01", True),
    ("start of text \x02 and end of text \x03", True),
    ("every control character: " + "".join(map(chr, range(1, 32))), True),
])
@pytest.mark.parametrize("blocks", ["default", "small"])
def test_jsonl_encodes_any_text_exactly(version, nasty, exact, blocks, request, exact_path_blocks):
    if blocks == "small":
        request.getfixturevalue("small_blocks")
    members = list(DatasetVersionMember.objects.filter(version=version).order_by("position"))
    for i in (1, 20):  # with small blocks, in two different COPY statements
        m = members[i]
        m.query_text = nasty
        m.passage_text = "P: " + nasty
        m.passage_title = nasty[:20]
        m.reasoning_trace = nasty * 3
        m.origin = nasty[:16]
        m.prompt_versions = {"reasoner": 1, "note": 'a "quoted" \\ back\nslash \x01 é', "nested": {"l": [1, 2.5, None, True]}}
        m.reasoner_judgment = None
        m.save()
    served_bytes = b"".join(exports.jsonl_stream(version))
    served = _rows(served_bytes)
    assert served == _db_rows(version)
    assert served[1]["query_text"] == nasty and served[1]["reasoner_judgment"] is None
    if connection.vendor == "postgresql":
        # Only blocks holding a byte the PostgreSQL path uses as a marker take the exact path; rows and bytes are the same.
        assert bool(exact_path_blocks) == exact
        assert all(lo <= 1 < hi or lo <= 20 < hi for lo, hi in exact_path_blocks)
        assert served_bytes == b"".join(exports.jsonl_stream_portable(version))


def _set_members(version, changes: dict[int, dict]) -> None:
    members = {m.position: m for m in DatasetVersionMember.objects.filter(version=version, position__in=list(changes))}
    for position, fields in changes.items():
        for name, value in fields.items():
            setattr(members[position], name, value)
        members[position].save()


def test_postgres_groups_copies_and_exact_groups_in_between(version, monkeypatch, exact_path_blocks):
    """Many small groups and several COPY statements per export; groups holding a marker byte take the exact path
    (alone: the COPY is abandoned and the next one starts after the group), groups holding other control characters
    or a vertical tab are rewritten in place; every start position gives the portable encoder's bytes."""
    monkeypatch.setattr(exports, "_PG_BLOCK_BYTES", 1500)  # groups of 1, then of about 2 members
    monkeypatch.setattr(exports, "_PG_FIRST_COPY_ROWS", 5)
    monkeypatch.setattr(exports, "_PG_COPY_ROWS", 12)
    _set_members(version, {
        3: {"query_text": "marker \x01 in the first COPY"},
        8: {"passage_text": "escape \x1b, bell \x07 and \x04: rewritten in the block"},
        14: {"reasoning_trace": "two adjacent groups with markers \x02"},
        15: {"instruction": "\x03\x01"},
        20: {"passage_title": "vertical tab \v, backslash then v \\v"},
        31: {"content_hash": "the last member \x01"},
    })
    with connection.cursor() as cursor:  # jsonb keeps 1.50 and 1e3 as written; Python reads floats
        cursor.execute(
            "UPDATE curation_datasetversionmember SET prompt_versions = %s WHERE version_id = %s AND position IN (0, 5, 17, 30)",
            ['{"reasoner": 1.50, "big": 1e3, "n": [1, 2.5, -0.0, null, true, {"k": "v \\" \\u00e9 \\u0001"}], "e": {}}', version.pk],
        )
    served = b"".join(exports.jsonl_stream(version))
    portable = b"".join(exports.jsonl_stream_portable(version))
    assert _rows(served) == _db_rows(version)
    assert _rows(served)[5]["prompt_versions"]["reasoner"] == 1.5
    if connection.vendor != "postgresql":
        return
    assert served == portable
    exact = [call for call in exact_path_blocks if call[1] is not None]
    assert exact and all(any(lo <= p < hi for p in (3, 14, 15, 31)) for lo, hi in exact)
    assert all(any(lo <= p < hi for lo, hi in exact) for p in (3, 14, 15, 31))
    assert sum(hi - lo for lo, hi in exact) <= 8  # the groups holding them, of one or two members
    for start in (1, 4, 9, 14, 16, 31, 32):
        assert b"".join(exports.jsonl_stream(version, start=start)) == b"".join(exports.jsonl_stream_portable(version, start=start))


def test_postgres_export_after_an_abandoned_copy(version, monkeypatch):
    """A client that goes away mid-COPY: the COPY is read to its end, and the connection runs the next queries."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's COPY path")
    monkeypatch.setattr(exports, "_PG_BLOCK_BYTES", 1500)
    stream = exports.jsonl_stream(version)
    first = next(stream)
    assert first.count(b"\n") >= 1
    stream.close()
    assert DatasetVersionMember.objects.filter(version=version).count() == 32
    assert b"".join(exports.jsonl_stream(version)) == b"".join(exports.jsonl_stream_portable(version))


def test_rank1_training_rows(version, admin_api):
    r = admin_api.get(f"/api/dataset-versions/{version.pk}/export/?format=rank1")
    assert r.status_code == 200
    rows = _rows(_body(r))
    members = list(DatasetVersionMember.objects.filter(version=version).order_by("position"))
    assert len(rows) == len(members)
    for row, m in zip(rows, members):
        assert set(row) == {"instruction", "input", "output"}
        assert row["instruction"] == RANK1_INSTRUCTION
        assert row["instruction"] + "\n" + row["input"] == prompt_build(
            query=m.query_text, passage_title=m.passage_title, passage_text=m.passage_text, instruction=m.instruction)
        # After `<think>`: a newline, the reasoning, `\n</think>` and the answer (the reference's forced-answer layout).
        assert row["output"] == f"\n{m.reasoning_trace.strip()}\n</think> {'true' if m.label else 'false'}"
    with_instruction = next(m for m in members if m.instruction)
    i = members.index(with_instruction)
    assert f"Query: {with_instruction.query_text} {with_instruction.instruction}\n" in rows[i]["input"]
    assert rows[i]["input"].endswith("\n<think>")


def _cold_then_warm(client, url) -> bytes:
    """The export streamed from the database, then the same export served from its snapshot: equal bytes."""
    cold = client.get(url)
    assert cold.status_code == 200 and cold["X-Export-Source"] == "database"
    body = _body(cold)
    warm = client.get(url)
    assert warm.status_code == 200 and warm["X-Export-Source"] == "snapshot" and warm["Content-Length"] == str(len(body))
    assert _body(warm) == body
    return body


def test_parquet_round_trip_through_datasets(version, admin_api, tmp_path):
    import datasets

    url = f"/api/dataset-versions/{version.pk}/export/?format=parquet"
    path = tmp_path / "v.parquet"
    path.write_bytes(_cold_then_warm(admin_api, url))
    assert admin_api.get(url)["Content-Type"] == "application/vnd.apache.parquet"
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.column_names == list(exports.FIELDS)
    back = [dict(row) for row in ds]
    for row in back:
        row["prompt_versions"] = json.loads(row["prompt_versions"])
    assert back == _db_rows(version)


def test_jsonl_round_trip_through_datasets(version, admin_api, tmp_path):
    import datasets

    path = tmp_path / "v.jsonl"
    path.write_bytes(_cold_then_warm(admin_api, f"/api/dataset-versions/{version.pk}/export/?format=jsonl"))
    ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    db = _db_rows(version)
    assert len(ds) == len(db)
    for got, want in zip(ds, db):
        for field in ("position", "example_id", "query_text", "passage_text", "reasoning_trace", "label", "content_hash"):
            assert got[field] == want[field]


def test_etag_if_none_match_304(version, admin_api):
    url = f"/api/dataset-versions/{version.pk}/export/?format=rank1"
    r = admin_api.get(url, HTTP_IF_NONE_MATCH=f'"{version.content_hash}"')
    assert r.status_code == 304 and r["ETag"] == f'"{version.content_hash}"' and r.content == b""
    assert admin_api.get(url, HTTP_IF_NONE_MATCH='"something-else"').status_code == 200


def test_export_of_unknown_version_is_json_404(admin_api):
    r = admin_api.get("/api/dataset-versions/999999/export/?format=parquet")
    assert r.status_code == 404 and r["Content-Type"] == "application/json"


def _series(n_param: str = "%s") -> str:
    if connection.vendor == "postgresql":
        return f"SELECT generate_series(0, {n_param} - 1) AS i"
    return f"WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < {n_param}) SELECT i FROM s"


def _members_bulk(version, n: int, text_bytes: int = 900) -> None:
    """n examples and n members of one version written with INSERT ... SELECT (the build service is tested
    elsewhere; 100,000 rows through the ORM would dominate the test's time)."""
    anchor = make_examples(1, dataset=version.dataset, tag=f"bulk-{version.pk}")[0]
    tag = f"bulk{version.pk}-"
    filler = "lorem ipsum dolor sit amet " * (text_bytes // 27)
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO curation_example (dataset_id, query_id, passage_id, intended_label, reasoning_trace, reasoner_judgment, "
            "judgment_votes, origin, status, filter_reason, prompt_versions, reasoner_model, content_hash, reviews_done, "
            "created_at, updated_at) "
            f"SELECT %s, %s, %s, (i %% 2 = 0), '', NULL, '[]', 'rank1', 'approved', '', '{{}}', '', %s || i, 0, "
            f"CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM ({_series()}) AS s",
            [version.dataset_id, anchor.query_id, anchor.passage_id, tag, n],
        )
        cur.execute(
            "INSERT INTO curation_datasetversionmember (version_id, example_id, position, query_text, instruction, passage_title, "
            "passage_text, reasoning_trace, label, origin, variant, domain, reasoner_judgment, reasoner_model, prompt_versions, content_hash) "
            "SELECT %s, e.id, CAST(substr(e.content_hash, %s) AS INTEGER), 'query ' || e.id, '', 'title', %s || e.id, "
            "'reasoning ' || e.id, e.intended_label, 'rank1', 'original', '', e.intended_label, 'r1', '{}', e.content_hash "
            "FROM curation_example e WHERE e.content_hash LIKE %s",
            [version.pk, len(tag) + 1, filler, tag + "%"],
        )
    version.example_count = n
    version.save(update_fields=["example_count"])


def _export_peak(client, url, source: str = "database") -> tuple[int, int]:
    """(bytes streamed, peak traced Python memory while streaming) with the response consumed chunk by chunk."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    total = 0
    r = client.get(url)
    assert r.status_code == 200 and r["X-Export-Source"] == source
    for chunk in r.streaming_content:
        total += len(chunk)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return total, peak


@pytest.mark.parametrize("fmt, small_n, big_n", [("jsonl", 10_000, 100_000), ("parquet", 10_000, 40_000)])
def test_export_memory_is_bounded(admin_api, fmt, small_n, big_n):
    """The server's peak (traced) memory while streaming 100,000 rows: flat in N (ten times the rows, about
    the same peak) and a small fraction of the data, from the database (writing the snapshot as it goes) and
    then from the snapshot. Parquet (built one 5,000-row group at a time) at 40,000."""
    ds = factories.DatasetFactory(name=f"big-{fmt}")
    small = factories.DatasetVersionFactory(dataset=ds, version=1, content_hash="a" * 64)
    big = factories.DatasetVersionFactory(dataset=ds, version=2, content_hash="b" * 64)
    _members_bulk(small, small_n)
    _members_bulk(big, big_n)
    size_small, peak_small = _export_peak(admin_api, f"/api/dataset-versions/{small.pk}/export/?format={fmt}")
    size_big, peak_big = _export_peak(admin_api, f"/api/dataset-versions/{big.pk}/export/?format={fmt}")
    raw_bytes = big_n * 900  # the passage text alone
    assert size_big > (5 if fmt == "jsonl" else 2) * size_small  # parquet compresses the repeated filler
    assert peak_big < 1.5 * peak_small + 4_000_000, (peak_small, peak_big)
    assert peak_big < raw_bytes / (4 if fmt == "jsonl" else 1.5), (peak_big, raw_bytes)
    assert peak_big < 48 * 1024 * 1024
    size_warm, peak_warm = _export_peak(admin_api, f"/api/dataset-versions/{big.pk}/export/?format={fmt}", source="snapshot")
    assert size_warm == size_big and peak_warm < 4 * 1024 * 1024, peak_warm
