"""Export snapshots: the first full export of a version writes a file while it streams; later requests are served
from it (no database reads), with byte ranges (206/416, If-Range) and the row `offset`; an interrupted or failed
first export leaves nothing behind; concurrent first exports write it once; prune_export_snapshots cleans up."""
from __future__ import annotations

import io
import os
import time

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from curation import exports
from curation.models import DatasetVersionMember
from curation.services.datasets import dataset_version_build
from tests import factories
from tests.curation.api.conftest import make_examples

pytestmark = pytest.mark.django_db
MEMBERS = DatasetVersionMember._meta.db_table


@pytest.fixture
def interleavable(monkeypatch, small_blocks):
    """Concurrent exports run on their own database connections; interleaved in one test they share one, which
    cannot run a second COPY while the first is streaming: read the rows first, hand them out chunk by chunk."""
    real = exports.export_stream

    def read_then_stream(version, fmt, *, start=0):
        yield from list(real(version, fmt, start=start))

    monkeypatch.setattr(exports, "export_stream", read_then_stream)


def _url(version, fmt="jsonl", extra=""):
    return f"/api/dataset-versions/{version.pk}/export/?format={fmt}{extra}"


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def _leftovers(directory) -> list[str]:
    """Temporary files in the snapshot directory (there must be none once no export is running)."""
    return sorted(p.name for p in directory.glob("*.partial")) if directory.exists() else []


def _export_response(user, version, fmt="jsonl"):
    """The view's response as the WSGI server gets it (no test-client wrapper around its content)."""
    from django.urls import resolve
    from rest_framework.test import APIRequestFactory, force_authenticate

    request = APIRequestFactory().get(_url(version, fmt))
    force_authenticate(request, user=user)
    match = resolve(request.path)
    return match.func(request, *match.args, **match.kwargs)


def _client_goes_away(response) -> None:
    """What a WSGI server does when a write to the client fails: close the response mid-stream (here with the test
    transaction's connection kept open, as Django's test client does around request_finished)."""
    from django.core.signals import request_finished
    from django.db import close_old_connections

    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def _lock_is_free(path) -> bool:
    import fcntl

    try:
        fd = os.open(f"{path}.lock", os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("fmt", ["jsonl", "rank1", "parquet"])
def test_first_export_writes_the_snapshot_and_later_ones_do_not_read_the_database(version, admin_api, snapshot_dir, fmt):
    with CaptureQueriesContext(connection) as cold_queries:
        cold = admin_api.get(_url(version, fmt))
        assert cold.status_code == 200 and cold["X-Export-Source"] == "database"
        body = _body(cold)
    assert any(MEMBERS in q["sql"] for q in cold_queries.captured_queries)  # the check below can see member reads
    path = exports.snapshot_path(version, fmt)
    assert path.parent == snapshot_dir and path.read_bytes() == body
    assert _leftovers(snapshot_dir) == [] and sorted(p.name for p in snapshot_dir.iterdir()) == [path.name]  # no lock file left

    with CaptureQueriesContext(connection) as warm_queries:
        warm = admin_api.get(_url(version, fmt))
        assert warm.status_code == 200 and warm["X-Export-Source"] == "snapshot"
        assert _body(warm) == body
    assert not [q["sql"] for q in warm_queries.captured_queries if MEMBERS in q["sql"]]
    assert warm["Content-Length"] == str(len(body)) and warm["Accept-Ranges"] == "bytes"
    assert warm["ETag"] == cold["ETag"] == f'"{version.content_hash}"'
    assert warm["Content-Disposition"] == cold["Content-Disposition"] and warm["Content-Type"] == cold["Content-Type"]
    assert warm["X-Row-Count"] == "32"

    # The members are gone from the database: the export still comes whole, from the file.
    DatasetVersionMember.objects.filter(version=version).delete()
    assert _body(admin_api.get(_url(version, fmt))) == body


def test_the_commit_runs_in_the_background_by_default(version, admin_api, settings):
    """fsync + rename of the snapshot do not hold up the end of the response (nor the worker's next request)."""
    settings.LIMRANK_EXPORT_SNAPSHOT_BACKGROUND_COMMIT = True
    path = exports.snapshot_path(version, "jsonl")
    body = _body(admin_api.get(_url(version)))  # the test client closes the response after the last chunk
    exports.snapshot_commits_wait(timeout=30)
    assert path.read_bytes() == body and _lock_is_free(path)
    assert admin_api.get(_url(version))["X-Export-Source"] == "snapshot"


def test_byte_ranges_of_the_snapshot(version, admin_api):
    full = _body(admin_api.get(_url(version)))  # writes the snapshot
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
        assert r["ETag"] == etag and r["X-Export-Source"] == "snapshot"

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


def test_parquet_byte_ranges(version, admin_api):
    full = _body(admin_api.get(_url(version, "parquet")))
    r = admin_api.get(_url(version, "parquet"), HTTP_RANGE="bytes=-4")  # what a parquet reader fetches first
    assert r.status_code == 206 and _body(r) == full[-4:] == b"PAR1"


def test_range_before_any_snapshot_builds_it_first(version, admin_api):
    full = b"".join(exports.export_stream(version, "jsonl"))
    ignored = admin_api.get(_url(version, "rank1"), HTTP_RANGE="bytes=0-1,5-6")  # not a range we serve: streamed
    assert ignored.status_code == 200 and ignored["X-Export-Source"] == "database" and _body(ignored)
    assert exports.snapshot_open(version, "jsonl") is None
    r = admin_api.get(_url(version), HTTP_RANGE="bytes=100-199")
    assert r.status_code == 206 and _body(r) == full[100:200] and r["Content-Range"] == f"bytes 100-199/{len(full)}"
    assert exports.snapshot_path(version, "jsonl").read_bytes() == full


def test_head_answers_the_size(version, admin_api):
    r = admin_api.head(_url(version, "rank1"))  # builds the snapshot to know the size
    assert r.status_code == 200 and not r.streaming and r.content == b"" and r["X-Export-Source"] == "snapshot"
    full = _body(admin_api.get(_url(version, "rank1")))
    assert int(r["Content-Length"]) == len(full) > 0
    r = admin_api.head(_url(version, "rank1"), HTTP_RANGE="bytes=10-19")
    assert r.status_code == 206 and r["Content-Length"] == "10" and r["Content-Range"] == f"bytes 10-19/{len(full)}"


def test_offset_resume_from_the_snapshot(version, admin_api):
    full = _body(admin_api.get(_url(version)))
    lines = full.splitlines(keepends=True)
    for offset, rows in [(0, 32), (1, 31), (30, 2), (32, 0), (1000, 0)]:
        r = admin_api.get(_url(version, extra=f"&offset={offset}"))
        assert r.status_code == 200 and r["X-Export-Source"] == "snapshot" and r["X-Row-Count"] == str(rows)
        assert _body(r) == b"".join(lines[offset:]), offset


def test_an_offset_export_from_the_database_writes_no_snapshot(version, admin_api):
    r = admin_api.get(_url(version, extra="&offset=5"))
    assert r["X-Export-Source"] == "database" and len(_body(r).splitlines()) == 27
    assert exports.snapshot_open(version, "jsonl") is None


def test_an_interrupted_first_export_leaves_no_snapshot(version, admin_api, snapshot_dir, small_blocks, api_admin):
    r = _export_response(api_admin, version)
    assert r.status_code == 200 and r["X-Export-Source"] == "database"
    chunks = iter(r.streaming_content)
    first = next(chunks)
    assert first and next(chunks)  # still streaming: the export is several chunks long
    assert len(_leftovers(snapshot_dir)) == 1  # written as it goes, under a temporary name
    _client_goes_away(r)
    path = exports.snapshot_path(version, "jsonl")
    assert not path.exists() and _leftovers(snapshot_dir) == [] and _lock_is_free(path)

    again = admin_api.get(_url(version))
    assert again["X-Export-Source"] == "database"
    body = _body(again)
    assert path.read_bytes() == body == b"".join(exports.export_stream(version, "jsonl"))


def test_a_failing_first_export_leaves_no_snapshot(version, admin_api, snapshot_dir, small_blocks, monkeypatch):
    real = exports.export_stream

    def breaks_midway(version, fmt, *, start=0):
        chunks = real(version, fmt, start=start)
        yield next(chunks)
        yield next(chunks)
        raise RuntimeError("database went away")

    monkeypatch.setattr(exports, "export_stream", breaks_midway)
    r = admin_api.get(_url(version, "rank1"))
    with pytest.raises(RuntimeError):
        _body(r)  # the test client closes the response, as a WSGI server does
    path = exports.snapshot_path(version, "rank1")
    assert not path.exists() and _leftovers(snapshot_dir) == [] and _lock_is_free(path)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_snapshot_write_that_fails_leaves_no_snapshot_and_the_export_whole(version, admin_api, snapshot_dir, small_blocks,
                                                                            monkeypatch, fmt):
    """The snapshot is written by a thread of its own: a write that fails there (disk full) costs the snapshot, not the
    export, whether it surfaces at a later chunk or only at the commit."""
    import errno

    expected = b"".join(exports.export_stream(version, fmt))
    real_init = exports._SnapshotWriter.__init__

    class FullDisk:
        def __init__(self, file):
            self._file, self.writes = file, 0

        def write(self, data):
            self.writes += 1
            if self.writes > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self._file.write(data)

        def __getattr__(self, name):
            return getattr(self._file, name)

    def init(self, path, lock_fd):
        real_init(self, path, lock_fd)
        self._file = FullDisk(self._file)

    monkeypatch.setattr(exports._SnapshotWriter, "__init__", init)
    r = admin_api.get(_url(version, fmt))
    assert r["X-Export-Source"] == "database" and _body(r) == expected
    path = exports.snapshot_path(version, fmt)
    assert not path.exists() and _leftovers(snapshot_dir) == [] and _lock_is_free(path)

    monkeypatch.setattr(exports._SnapshotWriter, "__init__", real_init)
    assert _body(admin_api.get(_url(version, fmt))) == expected
    assert path.read_bytes() == expected and admin_api.get(_url(version, fmt))["X-Export-Source"] == "snapshot"


def test_concurrent_first_exports_write_the_snapshot_once(version, snapshot_dir, interleavable):
    path = exports.snapshot_path(version, "jsonl")
    first = exports.export_stream_snapshotting(version, "jsonl")
    second = exports.export_stream_snapshotting(version, "jsonl")
    a = [next(first)]  # the first holds the lock and writes
    b = [next(second)]  # the second streams from the database and writes nothing
    assert len(_leftovers(snapshot_dir)) == 1
    b.extend(second)
    second.close()  # what the WSGI server does after the last chunk
    assert not path.exists()  # the second one finished, but wrote nothing
    a.extend(first)
    assert not path.exists() and len(_leftovers(snapshot_dir)) == 1  # complete, committed when the response closes
    first.close()
    assert path.read_bytes() == b"".join(a) == b"".join(b)
    assert _leftovers(snapshot_dir) == [] and _lock_is_free(path)


def test_a_range_request_during_a_first_export_builds_its_own_copy(version, admin_api, snapshot_dir, interleavable):
    streaming = exports.export_stream_snapshotting(version, "jsonl")
    head = next(streaming)  # holds the lock
    r = admin_api.get(_url(version), HTTP_RANGE="bytes=0-9")  # does not wait for that download
    assert r.status_code == 206 and _body(r) == head[:10]
    full = head + b"".join(streaming)
    streaming.close()
    assert exports.snapshot_path(version, "jsonl").read_bytes() == full
    assert _leftovers(snapshot_dir) == []


def test_versions_with_the_same_content_hash_have_their_own_snapshots(admin_api):
    """The content hash covers the members' content, not their example ids or provenance."""
    ds = factories.DatasetFactory(name="twins")
    a = factories.DatasetVersionFactory(dataset=ds, version=1, content_hash="c" * 64)
    b = factories.DatasetVersionFactory(dataset=ds, version=2, content_hash="c" * 64)
    for v, n in ((a, 3), (b, 5)):
        for i, e in enumerate(make_examples(n, dataset=ds, tag=f"t{v.pk}")):
            DatasetVersionMember.objects.create(
                version=v, example=e, position=i, query_text=f"q{v.pk}-{i}", passage_text="p", label=True, origin="rank1", content_hash="h"
            )
        v.example_count = n
        v.save()
    for v, n in ((a, 3), (b, 5), (a, 3), (b, 5)):
        assert len(_body(admin_api.get(_url(v))).splitlines()) == n
    assert exports.snapshot_path(a, "jsonl") != exports.snapshot_path(b, "jsonl")


def test_no_snapshot_directory_still_exports(version, admin_api, settings, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    settings.LIMRANK_EXPORT_SNAPSHOT_DIR = str(tmp_path / "a-file" / "exports")
    full = _body(admin_api.get(_url(version)))
    assert len(full.splitlines()) == 32
    r = admin_api.get(_url(version), HTTP_RANGE="bytes=0-9")  # no snapshot to take a range of: the whole export
    assert r.status_code == 200 and r["X-Export-Source"] == "database" and _body(r) == full


def test_prune_export_snapshots(version, admin_api, snapshot_dir):
    other = dataset_version_build(dataset=version.dataset, filters={}, recipe={"seed": 6}, created_by=None)
    for v in (version, other):
        _body(admin_api.get(_url(v)))
        _body(admin_api.get(_url(v, "parquet")))
    keep = {exports.snapshot_path(version, "jsonl"), exports.snapshot_path(version, "parquet")}
    gone = {exports.snapshot_path(other, "jsonl"), exports.snapshot_path(other, "parquet")}
    old_partial = snapshot_dir / f".{exports.snapshot_path(version, 'rank1').name}.x1.partial"
    new_partial = snapshot_dir / f".{exports.snapshot_path(version, 'rank1').name}.x2.partial"
    for p in (old_partial, new_partial):
        p.write_bytes(b"{}\n")
    os.utime(old_partial, (time.time() - 7200, time.time() - 7200))
    stranger = snapshot_dir / "README.txt"
    stranger.write_text("not a snapshot")
    other.members.all().delete()
    other.delete()

    out = io.StringIO()
    call_command("prune_export_snapshots", stdout=out)
    assert "deleted 2 snapshot(s), 1 temporary file(s)" in out.getvalue()
    assert all(p.exists() for p in keep) and not any(p.exists() for p in gone)
    assert not old_partial.exists() and new_partial.exists() and stranger.exists()
    assert not list(snapshot_dir.glob("*.lock"))  # no export holds them
    assert _body(admin_api.get(_url(version)))  # still served
    assert admin_api.get(_url(version))["X-Export-Source"] == "snapshot"

    call_command("prune_export_snapshots", "--all", stdout=io.StringIO())
    assert not any(p.exists() for p in keep)
    assert admin_api.get(_url(version))["X-Export-Source"] == "database"
