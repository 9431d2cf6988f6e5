"""Export files: every field in JSONL, Rank1 training rows, parquet read back by `datasets`, ETag/304, resume, and
memory that does not grow with the version's size. States, byte ranges and storage: test_export_files.py."""
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
    assert response.status_code in (200, 206), (response.status_code, getattr(response, "content", b""))
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


@pytest.mark.parametrize("nasty", [
    "unicode é 漢字 🙂 \u2028 \x85 and literals: backslash-n \\n, backslash-v \\v, two then v \\\\v",
    "",
    "vertical tab \v",
    "backslash then vertical tab \\\v and \\\\\v",
    "every control character: " + "".join(map(chr, range(1, 32))),
])
def test_jsonl_encodes_any_text_exactly(version, nasty):
    members = list(DatasetVersionMember.objects.filter(version=version).order_by("position"))
    for i in (1, 20):
        m = members[i]
        m.query_text = nasty
        m.passage_text = "P: " + nasty
        m.passage_title = nasty[:20]
        m.reasoning_trace = nasty * 3
        m.origin = nasty[:16]
        m.prompt_versions = {"reasoner": 1, "note": 'a "quoted" \\ back\nslash \x01 é', "nested": {"l": [1, 2.5, None, True]}}
        m.reasoner_judgment = None
        m.save()
    body = b"".join(exports.jsonl_blocks(version))
    assert body.count(b"\n") == len(members)  # a raw newline only ends a row
    served = _rows(body)
    assert served == _db_rows(version)
    assert served[1]["query_text"] == nasty and served[1]["reasoner_judgment"] is None


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


def _download(client, url) -> bytes:
    r = client.get(url)
    body = _body(r)
    assert r["Content-Length"] == str(len(body))
    return body


def test_parquet_round_trip_through_datasets(version, admin_api, tmp_path):
    import datasets

    url = f"/api/dataset-versions/{version.pk}/export/?format=parquet"
    path = tmp_path / "v.parquet"
    path.write_bytes(_download(admin_api, url))
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
    path.write_bytes(_download(admin_api, f"/api/dataset-versions/{version.pk}/export/?format=jsonl"))
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


def _render_peak(version, fmt: str) -> tuple[int, int]:
    """(file size, peak traced Python memory while rendering the version's file in `fmt`)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    path = exports.export_render(version=version, fmt=fmt)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return path.stat().st_size, peak


def _serve_peak(client, url) -> tuple[int, int]:
    """(bytes served, peak traced Python memory while the response is consumed chunk by chunk)."""
    assert client.head(url).status_code == 200  # the first request's imports (URLconf, DRF) are not the download's
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    total = 0
    r = client.get(url)
    assert r.status_code == 200
    for chunk in r.streaming_content:
        total += len(chunk)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return total, peak


@pytest.mark.parametrize("fmt, small_n, big_n", [("jsonl", 10_000, 100_000), ("parquet", 10_000, 40_000)])
def test_export_memory_is_bounded(admin_api, fmt, small_n, big_n):
    """The peak (traced) memory while rendering 100,000 rows: flat in N (ten times the rows, about the same peak) and
    a small fraction of the data; serving the file holds about one block. Parquet (one 5,000-row group at a time)
    at 40,000."""
    ds = factories.DatasetFactory(name=f"big-{fmt}")
    small = factories.DatasetVersionFactory(dataset=ds, version=1, content_hash="a" * 64)
    big = factories.DatasetVersionFactory(dataset=ds, version=2, content_hash="b" * 64)
    _members_bulk(small, small_n)
    _members_bulk(big, big_n)
    size_small, peak_small = _render_peak(small, fmt)
    size_big, peak_big = _render_peak(big, fmt)
    raw_bytes = big_n * 900  # the passage text alone
    assert size_big > (5 if fmt == "jsonl" else 2) * size_small  # parquet compresses the repeated filler
    assert peak_big < 1.5 * peak_small + 4_000_000, (peak_small, peak_big)
    assert peak_big < raw_bytes / (4 if fmt == "jsonl" else 1.5), (peak_big, raw_bytes)
    assert peak_big < 48 * 1024 * 1024
    served, peak_serve = _serve_peak(admin_api, f"/api/dataset-versions/{big.pk}/export/?format={fmt}")
    assert served == size_big and peak_serve < 4 * 1024 * 1024, peak_serve


def test_render_hands_its_bytes_to_the_disk_as_it_goes(version, monkeypatch, settings, tmp_path):
    """A large render starts the writeback of each stretch it has written (contiguous ranges, in order) instead of
    leaving everything to the fsync before the rename; the file is the same either way."""
    settings.MEDIA_ROOT = str(tmp_path / "unpaced")
    unpaced = exports.export_render(version=version, fmt="jsonl").read_bytes()
    calls = []
    real = exports.os.posix_fadvise
    monkeypatch.setattr(exports.os, "posix_fadvise", lambda fd, off, n, advice: (calls.append((off, n, advice)),
                                                                                 real(fd, off, n, advice)))
    monkeypatch.setattr(exports, "_WRITEBACK_BYTES", 4096)
    monkeypatch.setattr(exports, "CHUNK_ROWS", 4)  # blocks of ~2 KB
    settings.MEDIA_ROOT = str(tmp_path / "paced")
    paced = exports.export_render(version=version, fmt="jsonl").read_bytes()
    assert paced == unpaced and len(paced) > 3 * 4096
    assert len(calls) >= len(paced) // (4096 + 2000) and {advice for *_, advice in calls} == {exports.os.POSIX_FADV_DONTNEED}
    ends = [0] + [off + n for off, n, _ in calls]
    assert [off for off, _, _ in calls] == ends[:-1] and all(n >= 4096 for _, n, _ in calls)
    assert ends[-1] <= len(paced)
