"""Benchmark: rendering a dataset version's export file, and serving it, against PostgreSQL's COPY in the same run.

    .venv/bin/python bench/export.py --examples 100000 [--small 10000] [--format jsonl]

The target (issue 19), for 1,000,000 members: rendering the JSONL (curation.exports.export_render, what the Celery
task runs) >= 0.3x the rows/s of `COPY (SELECT the members' fields ...) TO STDOUT` read to its end; serving the
rendered file over HTTP (gunicorn, the export endpoint) >= 1x COPY; server memory flat from --small to --examples
members (the peak RSS of the process rendering, and of the gunicorn worker serving, compared between the sizes).

DATABASE_URL as bench/review_api.py (default postgres://postgres@127.0.0.1:5432/review_bench); its examples are
reused (loaded if missing) and each run builds its versions' members with INSERT ... SELECT.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import review_api  # noqa: E402  (the bench database, its examples and a reviewer's token)


def make_version(dataset_id: int, n: int):
    """A ready version of n members, written with INSERT ... SELECT from the bench examples."""
    from django.db import connection

    from curation.models import Dataset, DatasetVersion

    ds = Dataset.objects.get(pk=dataset_id)
    number = (DatasetVersion.objects.filter(dataset=ds).order_by("-version").values_list("version", flat=True).first() or 0) + 1
    version = DatasetVersion.objects.create(dataset=ds, version=number, status=DatasetVersion.Status.READY,
                                           content_hash=f"{number:064x}", example_count=n)
    with connection.cursor() as cur:
        cur.execute(
            """INSERT INTO curation_datasetversionmember (version_id, example_id, position, query_text, instruction,
                   passage_title, passage_text, reasoning_trace, label, origin, variant, domain, reasoner_judgment,
                   reasoner_model, prompt_versions, content_hash)
               SELECT %s, e.id, row_number() OVER (ORDER BY e.id) - 1, q.text, q.instruction, p.title, p.text,
                      e.reasoning_trace, e.intended_label, e.origin, q.variant, q.domain, e.reasoner_judgment,
                      e.reasoner_model, e.prompt_versions, e.content_hash
               FROM (SELECT * FROM curation_example WHERE dataset_id = %s ORDER BY id LIMIT %s) e
               JOIN curation_generatedquery q ON q.id = e.query_id JOIN curation_passage p ON p.id = e.passage_id""",
            [version.pk, dataset_id, n])
        # VACUUM sets the new rows' hint bits now: otherwise whichever reads them first (the COPY reference) pays
        # for writing them, which made COPY look two to three times slower at 1M than it is.
        cur.execute("VACUUM (ANALYZE) curation_datasetversionmember")
    return version


def copy_rows_per_s(version) -> tuple[float, int]:
    """Rows/s of COPY of the members' export fields, in position order, read to the end by the client."""
    from django.db import connection

    from curation.exports import FIELDS

    columns = ", ".join(connection.ops.quote_name(f) for f in FIELDS)
    sql = (f"COPY (SELECT {columns} FROM curation_datasetversionmember WHERE version_id = {int(version.pk)} "
           f"ORDER BY position) TO STDOUT")
    t0 = time.perf_counter()
    size = 0
    with connection.cursor() as cur:
        with cur.cursor.copy(sql) as copy:
            for block in copy:
                size += len(block)
    return version.example_count / (time.perf_counter() - t0), size


def render(version, fmt: str) -> tuple[float, int, int]:
    """(rows/s, file bytes, peak RSS of this process in KB afterwards)."""
    from curation import exports

    t0 = time.perf_counter()
    path = exports.export_render(version=version, fmt=fmt)
    rate = version.example_count / (time.perf_counter() - t0)
    return rate, path.stat().st_size, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def worker_peak_kb(server_pid: int) -> int:
    """The highest VmHWM among gunicorn's worker processes (children of the arbiter)."""
    peak = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() == str(server_pid):
            peak = max(peak, int(fields.get("VmHWM", "0 kB").split()[0]))
    return peak


def serve(port: int, token: str, version, fmt: str) -> tuple[float, int]:
    """(rows/s, bytes) of one download of the version's file over HTTP, read to its end."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("GET", f"/api/dataset-versions/{version.pk}/export/?format={fmt}",
                 headers={"Authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit(f"export answered {resp.status}: {resp.read()[:300]!r}")
    size = 0
    while block := resp.read(1 << 20):
        size += len(block)
    return version.example_count / (time.perf_counter() - t0), size


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=1_000_000, help="members of the large version")
    p.add_argument("--small", type=int, default=None, help="members of the small version (default: a tenth)")
    p.add_argument("--format", choices=["jsonl", "rank1", "parquet"], default="jsonl")
    p.add_argument("--port", type=int, default=8766)
    p.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", review_api.DEFAULT_DB))
    args = p.parse_args(argv)
    small_n = args.small or max(1, args.examples // 10)

    media = Path(tempfile.mkdtemp(prefix="bench-export-"))
    os.environ["MEDIA_ROOT"] = str(media)
    review_api.ensure_database(args.database_url)
    review_api.django_setup(args.database_url)
    from django.db import connections

    from curation.models import DatasetVersion

    dataset_id = review_api.load_examples(args.examples)
    token = review_api.reset_and_tokens(dataset_id, 1)[0]
    report = {"examples": args.examples, "small": small_n, "format": args.format, "load_avg_start": os.getloadavg()}
    versions = []
    try:
        small, big = make_version(dataset_id, small_n), make_version(dataset_id, args.examples)
        versions = [small, big]
        for name, version in (("small", small), ("big", big)):
            # The fastest of three COPYs: the reference the render is held to is the database at its best.
            copy_rate, copy_bytes = max(copy_rows_per_s(version) for _ in range(3))
            rate, size, rss = render(version, args.format)
            report[name] = {"members": version.example_count, "copy_rows_per_s": round(copy_rate),
                            "copy_bytes": copy_bytes, "render_rows_per_s": round(rate), "file_bytes": size,
                            "render_vs_copy": round(rate / copy_rate, 3), "bench_process_peak_rss_kb": rss}
        connections.close_all()
        env = {**os.environ, "DATABASE_URL": args.database_url, "MEDIA_ROOT": str(media)}
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        server = subprocess.Popen(
            [gunicorn, "limrank_app.wsgi:application", "--bind", f"127.0.0.1:{args.port}", "--worker-class", "gthread",
             "--workers", "1", "--threads", "4", "--log-level", "warning"], cwd=ROOT, env=env, start_new_session=True)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", args.port, timeout=2)
                    c.request("GET", "/healthz")
                    c.getresponse().read()
                    break
                except OSError:
                    if time.time() > deadline or server.poll() is not None:
                        raise SystemExit("gunicorn did not come up") from None
                    time.sleep(0.3)
            for name, version in (("small", small), ("big", big)):
                rate, size = serve(args.port, token, version, args.format)
                report[name].update({"serve_rows_per_s": round(rate), "served_bytes": size,
                                     "serve_vs_copy": round(rate / report[name]["copy_rows_per_s"], 3),
                                     "server_worker_peak_rss_kb": worker_peak_kb(server.pid)})
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        for version in versions:
            DatasetVersion.objects.filter(pk=version.pk).delete()
        shutil.rmtree(media, ignore_errors=True)
    report["load_avg_end"] = os.getloadavg()
    print(json.dumps(report, indent=2, default=str))
    big = report["big"]
    met = big["render_vs_copy"] >= 0.3 and big["serve_vs_copy"] >= 1.0
    print(f"target (render >= 0.3x COPY, serve >= 1x COPY): {'met' if met else 'NOT met'} at {args.examples:,} members; "
          f"peak RSS small -> big: render {report['small']['bench_process_peak_rss_kb']} -> "
          f"{big['bench_process_peak_rss_kb']} KB, serving worker {report['small']['server_worker_peak_rss_kb']} -> "
          f"{big['server_worker_peak_rss_kb']} KB")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
