"""A version's export files: rendered once by a task into storage, served with byte ranges (Range, If-Range, 206,
416), HEAD and row offsets; versions are `building` until their files exist, `failed` with the reason when a render
fails; a ready version whose file is gone answers 202 and renders it again."""
from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from curation import exports
from curation.models import DatasetVersion
from curation.services import datasets as dataset_services
from curation.services.datasets import RENDER_TASK, dataset_version_build, dataset_version_render
from curation.tasks import dataset_version_render_task
from tests import factories
from tests.curation.api.conftest import make_examples

pytestmark = pytest.mark.django_db


def _url(version, fmt: str = "jsonl", extra: str = "") -> str:
    return f"/api/dataset-versions/{version.pk}/export/?format={fmt}{extra}"


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def sent_tasks(monkeypatch) -> list:
    """Tasks handed to the broker, by name and arguments (the worker itself: tests/integration)."""
    sent = []
    monkeypatch.setattr(dataset_services.current_app, "send_task", lambda name, args: sent.append((name, args)))
    return sent


def _building_version(name="building"):
    ds = factories.DatasetFactory(name=name)
    make_examples(6, dataset=ds, tag=name)
    return dataset_version_build(dataset=ds, filters={}, recipe={"seed": 1})


def test_a_built_version_is_building_until_its_task_renders_the_files(admin_api, export_dir, sent_tasks,
                                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        version = _building_version()
    assert version.status == DatasetVersion.Status.BUILDING
    assert sent_tasks == [(RENDER_TASK, [version.pk])]  # enqueued once the members are committed
    api = admin_api.get(f"/api/dataset-versions/{version.pk}/")
    assert api.json()["status"] == "building"
    r = admin_api.get(_url(version))
    assert r.status_code == 409 and r["Retry-After"] == "5" and "still building" in r.json()["detail"]
    assert not export_dir.exists() or list(export_dir.iterdir()) == []

    dataset_version_render_task(version.pk)
    version.refresh_from_db()
    assert version.status == DatasetVersion.Status.READY
    assert sorted(p.name.split(".", 1)[1] for p in export_dir.iterdir()) == ["jsonl", "parquet", "rank1.jsonl"]
    r = admin_api.get(_url(version))
    assert r.status_code == 200 and len(_body(r).splitlines()) == 6
    # A redelivered task changes nothing: the files are there, the version stays ready.
    before = {p.name: p.stat().st_mtime_ns for p in export_dir.iterdir()}
    dataset_version_render_task(version.pk)
    assert {p.name: p.stat().st_mtime_ns for p in export_dir.iterdir()} == before


def test_a_failing_render_marks_the_version_failed_and_leaves_no_file(admin_api, export_dir, monkeypatch):
    version = _building_version("failing")
    calls = []

    def broken(version, fmt, file):
        calls.append(fmt)
        file.write(b'{"half": ')
        raise OSError("disk full")

    monkeypatch.setattr(exports, "_write", broken)
    with pytest.raises(OSError):
        dataset_version_render_task(version.pk)
    version.refresh_from_db()
    assert version.status == DatasetVersion.Status.FAILED and "disk full" in version.error
    assert list(export_dir.iterdir()) == []  # neither the file nor its temporary
    r = admin_api.get(_url(version))
    assert r.status_code == 409 and "failed to build" in r.json()["detail"] and "disk full" in r.json()["detail"]
    dataset_version_render_task(version.pk)  # a failed version is left alone
    assert calls == ["jsonl"]


def test_a_broker_that_refuses_the_task_fails_the_version_with_the_reason(monkeypatch,
                                                                          django_capture_on_commit_callbacks):
    def down(name, args):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(dataset_services.current_app, "send_task", down)
    with django_capture_on_commit_callbacks(execute=True):
        version = _building_version("no-broker")
    version.refresh_from_db()
    assert version.status == DatasetVersion.Status.FAILED and "broker down" in version.error


def test_a_ready_version_whose_file_is_gone_answers_202_and_renders_it(version, admin_api, export_dir, sent_tasks):
    full = _body(admin_api.get(_url(version, "rank1")))
    exports.export_path(version, "rank1").unlink()
    r = admin_api.get(_url(version, "rank1"))
    assert r.status_code == 202 and r["Retry-After"] == "5" and "being rendered" in r.json()["detail"]
    assert sent_tasks == [(RENDER_TASK, [version.pk])]
    dataset_version_render_task(version.pk)
    version.refresh_from_db()
    assert version.status == DatasetVersion.Status.READY
    assert _body(admin_api.get(_url(version, "rank1"))) == full


def test_byte_ranges(version, admin_api):
    full = _body(admin_api.get(_url(version)))
    n = len(full)
    etag = f'"{version.content_hash}"'

    def get(range_header, **headers):
        return admin_api.get(_url(version), HTTP_RANGE=range_header, **headers)

    for header, want in [
        ("bytes=0-99", (0, 99)), ("bytes=100-", (100, n - 1)), ("bytes=-50", (n - 50, n - 1)), ("bytes=10-10", (10, 10)),
        ("bytes=5-999999999", (5, n - 1)), ("bytes=-999999999", (0, n - 1)), (f"bytes={n - 1}-", (n - 1, n - 1)),
    ]:
        r = get(header)
        assert r.status_code == 206, header
        assert _body(r) == full[want[0]: want[1] + 1], header
        assert r["Content-Range"] == f"bytes {want[0]}-{want[1]}/{n}" and r["Content-Length"] == str(want[1] - want[0] + 1)
        assert r["ETag"] == etag and r["Accept-Ranges"] == "bytes"

    for header in (f"bytes={n}-", f"bytes={n + 10}-{n + 20}", "bytes=-0", "bytes=5-2", "bytes=abc", "bytes=-", "bytes="):
        r = get(header)
        assert r.status_code == 416, header
        assert r["Content-Range"] == f"bytes */{n}" and r["Content-Type"] == "application/json"

    # Ignored (the whole export, 200): another unit, several ranges, an If-Range that no longer matches.
    for header, extra in [("items=0-5", {}), ("bytes=0-1,5-6", {}), ("bytes=0-99", {"HTTP_IF_RANGE": '"other"'}),
                          ("bytes=0-99", {"HTTP_IF_RANGE": "Wed, 21 Oct 2015 07:28:00 GMT"})]:
        r = get(header, **extra)
        assert r.status_code == 200 and _body(r) == full and "Content-Range" not in r, (header, extra)
    r = get("bytes=0-99", HTTP_IF_RANGE=etag)
    assert r.status_code == 206 and _body(r) == full[:100]

    # A client resumes an interrupted download where it stopped.
    have = full[: n // 3]
    rest = get(f"bytes={len(have)}-")
    assert rest.status_code == 206 and have + _body(rest) == full

    # With `offset` (rows), the range is of the export from that row on.
    tail = b"".join(full.splitlines(keepends=True)[30:])
    r = admin_api.get(_url(version, extra="&offset=30"), HTTP_RANGE="bytes=3-")
    assert r.status_code == 206 and _body(r) == tail[3:] and r["Content-Range"] == f"bytes 3-{len(tail) - 1}/{len(tail)}"


def test_etag_304_whatever_the_state_of_the_download(version, admin_api):
    etag = f'"{version.content_hash}"'
    for headers in ({"HTTP_IF_NONE_MATCH": etag}, {"HTTP_IF_NONE_MATCH": f"W/{etag}"},
                    {"HTTP_IF_NONE_MATCH": etag, "HTTP_RANGE": "bytes=0-9"}):
        r = admin_api.get(_url(version, "parquet"), **headers)
        assert r.status_code == 304 and r["ETag"] == etag and r.content == b"", headers


def test_parquet_byte_ranges(version, admin_api):
    full = _body(admin_api.get(_url(version, "parquet")))
    r = admin_api.get(_url(version, "parquet"), HTTP_RANGE="bytes=-4")  # what a parquet reader fetches first
    assert r.status_code == 206 and _body(r) == full[-4:] == b"PAR1"


def test_head_answers_the_size(version, admin_api):
    r = admin_api.head(_url(version, "rank1"))
    assert r.status_code == 200 and not r.streaming and r.content == b""
    full = _body(admin_api.get(_url(version, "rank1")))
    assert int(r["Content-Length"]) == len(full) > 0
    r = admin_api.head(_url(version, "rank1"), HTTP_RANGE="bytes=10-19")
    assert r.status_code == 206 and r["Content-Length"] == "10" and r["Content-Range"] == f"bytes 10-19/{len(full)}"


def test_offset_resume(version, admin_api):
    full = _body(admin_api.get(_url(version)))
    lines = full.splitlines(keepends=True)
    for offset, rows in [(0, 32), (1, 31), (30, 2), (32, 0), (1000, 0)]:
        r = admin_api.get(_url(version, extra=f"&offset={offset}"))
        assert r.status_code == 200 and r["X-Row-Count"] == str(rows)
        assert _body(r) == b"".join(lines[offset:]), offset


def test_the_file_is_what_the_encoder_writes(version):
    assert exports.export_path(version, "jsonl").read_bytes() == b"".join(exports.jsonl_blocks(version))
    assert exports.export_path(version, "rank1").read_bytes() == b"".join(exports.rank1_blocks(version))


def test_versions_with_the_same_content_hash_have_their_own_files(admin_api):
    ds = factories.DatasetFactory(name="twins")
    make_examples(4, dataset=ds, tag="twins")
    a = dataset_version_build(dataset=ds, filters={}, recipe={"seed": 1}, render_now=True)
    b = dataset_version_build(dataset=ds, filters={}, recipe={"seed": 1}, render_now=True)
    assert a.content_hash == b.content_hash and a.pk != b.pk
    assert exports.export_path(a, "jsonl") != exports.export_path(b, "jsonl")
    rows_a = _body(admin_api.get(_url(a))).splitlines()
    rows_b = _body(admin_api.get(_url(b))).splitlines()
    assert len(rows_a) == len(rows_b) == 4 and rows_a == rows_b  # same members: same rows, two files


def test_prune_deletes_files_of_deleted_versions_and_stale_temporaries(version, export_dir):
    other = factories.DatasetVersionFactory(dataset=version.dataset, version=99, content_hash="c" * 64, example_count=0)
    dataset_version_render(version=other)
    keep = sorted(p.name for p in export_dir.iterdir())
    assert len(keep) == 6
    gone = export_dir / "v999999-1-deadbeef.jsonl"
    gone.write_bytes(b"old")
    fresh_tmp = export_dir / "v1-1-x.jsonl.abc.partial"
    fresh_tmp.write_bytes(b"in progress")
    unrelated = export_dir / "README"
    unrelated.write_text("not ours")
    out = io.StringIO()
    call_command("prune_export_files", stdout=out)
    assert "deleted 1 file(s)" in out.getvalue()
    assert not gone.exists() and fresh_tmp.exists() and unrelated.exists()
    call_command("prune_export_files", "--partial-age", "0", stdout=io.StringIO())
    assert not fresh_tmp.exists()
    assert sorted(p.name for p in export_dir.iterdir()) == sorted(keep + ["README"])
