"""Export benchmark: a frozen version of N approved examples in PostgreSQL, exported over HTTP as JSONL by
gunicorn on 127.0.0.1, against the floor of `COPY (SELECT <the same columns> ...) TO STDOUT` of the same rows
in the same run. Two exports are measured apart, each against that floor:

  cold  the first export of the version: from the database, writing the snapshot file as it streams (the file is
        deleted before each cold run, so every cold run is a first export: COPY, encoding, writing the file; the
        server fsyncs and renames it in the background after the response, and the next run waits for that);
  warm  a later export: served from the snapshot (gunicorn's sendfile; the file is in the page cache).

Reports rows/s, the ratio to the floor (target >= 0.5), the server's peak RSS for each (target: flat in N) and
the load average. Best of --repeat runs, per kind; the runs are listed too. The floor is the faster of two plans
(PostgreSQL's default, and reading the (version, position) index in order), best of --repeat each.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/limrank_bench_export flock /tmp/bench.lock .venv/bin/python bench/export.py
    ... bench/export.py --sizes 20000,200000        # scaled down
    ... bench/export.py --format rank1             # the training format instead of JSONL

The database named in DATABASE_URL is dropped and created again (it must be a scratch database: the script
refuses names without "bench"). Examples are bulk-loaded with COPY; the version's members are written with one
INSERT ... SELECT (the same snapshot the build service writes; the service itself is tested in tests/).
Snapshots go to LIMRANK_VAR_DIR/exports (default /tmp/limrank-bench-export/exports); the script deletes its own.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/limrank_bench_export"


def _args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    p.add_argument("--format", default="jsonl", choices=["jsonl", "rank1", "parquet"])
    p.add_argument("--workers", type=int, default=1, help="gunicorn workers")
    p.add_argument("--max-seconds", type=float, default=600, help="stop before a size that would start after this")
    p.add_argument("--repeat", type=int, default=3, help="best of N for the COPY floor, the cold and the warm export, each")
    return p.parse_args()


def _recreate_database(url: str) -> None:
    import psycopg

    u = urlparse(url)
    name = u.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop database {name!r}: use a scratch database whose name contains 'bench'")
    admin = u._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _django(url: str, var_dir: str):
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("LIMRANK_VAR_DIR", var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "limrank_app.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


FILLER = (
    "Hard-boiled eggs need nine to twelve minutes in water at a rolling boil; altitude lengthens the time because "
    "water boils at a lower temperature. Cooling them in ice water stops the cooking and makes peeling easier. "
)
TRACE = (
    "The query asks how long to boil an egg for a firm yolk. The passage gives a time range and explains the effect "
    "of altitude, which is the situation the persona describes. It answers the need directly, so it is relevant. "
)


def _copy_rows(cursor, table: str, columns: list[str], lines) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        buf = []
        for line in lines:
            buf.append(line)
            if len(buf) >= 20000:
                copy.write("".join(buf))
                buf.clear()
        if buf:
            copy.write("".join(buf))


def _load(n: int, offset: int, dataset_id: int, version_id: int) -> None:
    """n approved examples (distinct query, passage and trace each) and a ready version of all of them."""
    from django.db import connection

    now = "2026-01-01 00:00:00+00"
    with connection.cursor() as cur:
        raw = cur.cursor  # psycopg cursor, for COPY
        ids = range(offset + 1, offset + n + 1)
        _copy_rows(raw, "curation_generatedquery", ["id", "variant", "domain", "text", "instruction", "text_hash", "created_at"], (
            f"{i}\tdaily_life\thealth\thow long should I boil an egg at altitude, case {i}\t\tq{i}\t{now}\n" for i in ids))
        _copy_rows(raw, "curation_passage", ["id", "title", "text", "kind", "source", "text_hash", "created_at"], (
            f"{i}\tEggs {i}\t{FILLER}{FILLER[: i % 200]} ({i})\tpositive\tbench\tp{i}\t{now}\n" for i in ids))
        _copy_rows(raw, "curation_example", [
            "id", "dataset_id", "query_id", "passage_id", "intended_label", "reasoning_trace", "reasoner_judgment", "judgment_votes",
            "origin", "status", "filter_reason", "prompt_versions", "reasoner_model", "content_hash", "reviews_done", "created_at", "updated_at",
        ], (
            f"{i}\t{dataset_id}\t{i}\t{i}\t{'t' if i % 2 else 'f'}\t{TRACE}{TRACE[: i % 300]}\t{'t' if i % 2 else 'f'}\t[]\t"
            f"{'rank1' if i % 10 < 7 else 'synthetic'}\tapproved\t\t{{\"reasoner\": 1}}\tdeepseek-reasoner\tbench{i}\t0\t{now}\t{now}\n"
            for i in ids
        ))
        for table in ("curation_generatedquery", "curation_passage", "curation_example"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
        cur.execute(
            "INSERT INTO curation_datasetversionmember (version_id, example_id, position, query_text, instruction, passage_title, "
            "passage_text, reasoning_trace, label, origin, variant, domain, reasoner_judgment, reasoner_model, prompt_versions, content_hash) "
            "SELECT %s, e.id, e.id - %s - 1, q.text, q.instruction, p.title, p.text, e.reasoning_trace, e.intended_label, e.origin, "
            "q.variant, q.domain, e.reasoner_judgment, e.reasoner_model, e.prompt_versions, e.content_hash "
            "FROM curation_example e JOIN curation_generatedquery q ON q.id = e.query_id JOIN curation_passage p ON p.id = e.passage_id "
            "WHERE e.dataset_id = %s",
            [version_id, offset, dataset_id],
        )
        # A version is read long after it was built: vacuum now (visibility map, hint bits) so that autovacuum does
        # not start on these fresh tables during the measurements, then write the load's dirty buffers and pages
        # out, so that neither a checkpoint nor the kernel's writeback of ~2 GB runs during them either.
        for table in ("curation_generatedquery", "curation_passage", "curation_example", "curation_datasetversionmember"):
            cur.execute(f"VACUUM (ANALYZE) {table}")
        cur.execute("CHECKPOINT")
    os.sync()


def _copy_floor(version_id: int, *, index_order: bool) -> tuple[float, int]:
    """Seconds and bytes for COPY of the same rows and columns, in the same order, read by the client.
    index_order: with sorts disabled, so PostgreSQL reads the (version, position) index in order instead of
    its default plan here (the version's rows through the version_id index, then an external sort)."""
    from django.db import connection

    from curation.exports import FIELDS

    cols = ", ".join(f'"{f}"' for f in FIELDS)
    sql = f'COPY (SELECT {cols} FROM curation_datasetversionmember WHERE version_id = {int(version_id)} ORDER BY "position") TO STDOUT'
    with connection.cursor() as cur:
        cur.execute("SET enable_sort = off" if index_order else "RESET enable_sort")
        try:
            t = time.perf_counter()
            size = 0
            with cur.cursor.copy(sql) as copy:
                for block in copy:
                    size += len(block)
            return time.perf_counter() - t, size
        finally:
            cur.execute("RESET enable_sort")


class RssSampler(threading.Thread):
    """Peak resident memory of the largest gunicorn process (the worker serving the export), every 20 ms.
    The process list is refreshed once a second: listing children scans /proc (~2 ms), reading RSS does not."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.procs = [self.proc]
        self.listed = 0.0
        self.peak = 0
        self.stop = threading.Event()

    def current(self) -> int:
        import psutil

        if time.monotonic() - self.listed > 1.0:
            self.procs = [self.proc, *self.proc.children(recursive=True)]
            self.listed = time.monotonic()
        total = 0
        for p in self.procs:
            try:
                total = max(total, p.memory_info().rss)
            except psutil.NoSuchProcess:
                self.listed = 0.0
        return total

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_gunicorn(url: str, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "0", "LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "limrank_app.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", str(workers),
         "--worker-class", "sync", "--timeout", "600", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("gunicorn did not start")


def _http_export(port: int, version_id: int, key: str, fmt: str) -> tuple[float, int, int, dict]:
    """A plain HTTP/1.0 GET read with recv_into: the server streams without chunked encoding and the client adds
    as little as the COPY floor's client does. Returns (seconds, body bytes, newlines, response headers)."""
    t = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port), timeout=600)
    sock.sendall(
        f"GET /api/dataset-versions/{version_id}/export/?format={fmt} HTTP/1.0\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\n\r\n".encode()
    )
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    head = b""
    headers: dict = {}
    size = lines = 0
    while True:
        n = sock.recv_into(view)
        if not n:
            break
        chunk = view[:n]
        if head is not None:
            head += bytes(chunk)
            if b"\r\n\r\n" not in head:
                continue
            header, _, body = head.partition(b"\r\n\r\n")
            if not header.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
                raise SystemExit(f"export answered {header[:200]!r}")
            for line in header.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            head = None
            size += len(body)
            lines += body.count(b"\n")
            continue
        size += n
        lines += buf.count(b"\n", 0, n)
    sock.close()
    return time.perf_counter() - t, size, lines, headers


def _wait_for(path: Path, timeout: float = 300.0) -> None:
    """The server commits a snapshot (fsync, rename) in the background once the response is done."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"no snapshot {path} after {timeout:.0f} s")
        time.sleep(0.05)


def _drop_cached_pages(path: Path) -> None:
    """Release the page cache a moved-aside snapshot holds (clean: the server fsynced it). Kept cached, each 1 GB
    left behind by a cold run made the next run's snapshot go into memory this VM had never touched, and the
    guest's first touch of a page costs ~10x a recycled one (measured: 1 GB written in 1.7-2.6 s of system CPU
    into fresh pages, 0.18-0.25 s into just-freed ones): that measured the bench's own leftovers, not the export."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _measure(kind: str, port: int, version, key: str, fmt: str, sampler: RssSampler, n: int, repeat: int, snapshot: Path,
             trash: Path) -> dict:
    """--repeat exports of one kind; each must come from where `kind` says (the X-Export-Source header). Before
    each cold run the snapshot is moved aside (deleting 1 GB on this ext4, mounted with `discard`, keeps the disk
    busy for seconds: that would be measured, not the export) and its cached pages released; after it, the next
    run waits (untimed) until the server has committed the new snapshot."""
    want = {"cold": "database", "warm": "snapshot"}[kind]
    runs, peak = [], 0
    for _ in range(repeat):
        if kind == "cold" and snapshot.exists():
            trash.mkdir(exist_ok=True)
            moved = trash / f"{len(list(trash.iterdir()))}-{snapshot.name}"
            snapshot.rename(moved)
            _drop_cached_pages(moved)
        sampler.peak = sampler.current()
        seconds, size, lines, headers = _http_export(port, version.pk, key, fmt)
        peak = max(peak, sampler.peak)
        if kind == "cold":
            _wait_for(snapshot)
        if headers.get("x-export-source") != want:
            raise SystemExit(f"{kind} export came from {headers.get('x-export-source')!r}, expected {want!r}")
        if fmt != "parquet" and lines != n:
            raise SystemExit(f"{kind} export returned {lines} lines, expected {n}")
        runs.append((seconds, size))
    return {"s": min(r[0] for r in runs), "runs": [r[0] for r in runs], "bytes": runs[0][1], "rss_peak": peak,
            "sizes": {r[1] for r in runs}}


def main() -> None:
    args = _args()
    url = os.environ.get("DATABASE_URL", DEFAULT_DB)
    if not url.startswith("postgres"):
        raise SystemExit("bench/export.py measures PostgreSQL: set DATABASE_URL=postgres://.../<name with 'bench'>")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    started = time.perf_counter()
    _recreate_database(url)
    _django(url, var_dir="/tmp/limrank-bench-export")

    from curation import exports
    from curation.models import Dataset, DatasetVersion
    from limrank_app.models import ApiToken
    from limrank_app.services import api_token_create
    from django.contrib.auth import get_user_model
    from limrank_app.roles import ADMIN, roles_ensure, user_role_set

    roles_ensure()
    admin = get_user_model().objects.create_user("bench-admin", password="bench-admin-pw")
    user_role_set(admin, ADMIN)
    _, key = api_token_create(user=admin, name="bench", scope=ApiToken.Scope.READ)

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; snapshots in {exports.snapshot_dir()}", flush=True)
    port = _free_port()
    server = _start_gunicorn(url, port, args.workers)
    results, snapshots = [], []
    trash = exports.snapshot_dir() / "bench-export-trash"
    offset = 0
    try:
        sampler = RssSampler(server.pid)
        sampler.start()
        # Warm the worker (imports, connection, both code paths) so the baseline is the steady state.
        baseline_ds = Dataset.objects.create(name="warm-up")
        warm_up = DatasetVersion.objects.create(dataset=baseline_ds, version=1, status="ready", content_hash="0" * 64, example_count=1000)
        _load(1000, offset, baseline_ds.pk, warm_up.pk)
        offset += 1000
        snapshots.append(exports.snapshot_path(warm_up, args.format))
        _http_export(port, warm_up.pk, key, args.format)
        _wait_for(snapshots[-1])
        _http_export(port, warm_up.pk, key, args.format)
        for n in sizes:
            if time.perf_counter() - started > args.max_seconds:
                print(f"skipping {n:,}: past --max-seconds", flush=True)
                continue
            ds = Dataset.objects.create(name=f"bench-{n}")
            version = DatasetVersion.objects.create(dataset=ds, version=1, status="ready", content_hash=f"{n:064x}", example_count=n)
            path = exports.snapshot_path(version, args.format)
            snapshots.append(path)
            t = time.perf_counter()
            _load(n, offset, ds.pk, version.pk)
            offset += n
            load_s = time.perf_counter() - t
            load_before = os.getloadavg()
            # The floor is the faster of the two plans, best of --repeat each.
            copy_s, copy_bytes = min(_copy_floor(version.pk, index_order=i % 2 == 1) for i in range(2 * args.repeat))
            rss_idle = sampler.current()
            cold = _measure("cold", port, version, key, args.format, sampler, n, args.repeat, path, trash)
            if not path.exists() or path.stat().st_size != cold["bytes"]:
                raise SystemExit("the cold export did not leave a complete snapshot")
            warm = _measure("warm", port, version, key, args.format, sampler, n, args.repeat, path, trash)
            if warm["sizes"] != {cold["bytes"]} or cold["sizes"] != {cold["bytes"]}:
                raise SystemExit(f"cold and warm exports differ in size: {cold['sizes']} {warm['sizes']}")
            load_after = os.getloadavg()
            copy_rate = n / copy_s
            row = {
                "rows": n, "load_s": load_s, "copy_rows_s": copy_rate, "copy_mb": copy_bytes / 1e6, "http_mb": cold["bytes"] / 1e6,
                "cold_rows_s": n / cold["s"], "cold_ratio": (n / cold["s"]) / copy_rate, "cold_runs": cold["runs"],
                "warm_rows_s": n / warm["s"], "warm_ratio": (n / warm["s"]) / copy_rate, "warm_runs": warm["runs"],
                "rss_idle_mb": rss_idle / 1e6, "rss_cold_mb": cold["rss_peak"] / 1e6, "rss_warm_mb": warm["rss_peak"] / 1e6,
                "load": (load_before[0], load_after[0]),
            }
            results.append(row)
            print(
                f"{n:>9,} rows ({row['http_mb']:.0f} MB of {args.format}; load {load_s:.0f} s): COPY {copy_rate:,.0f} rows/s | "
                f"cold {row['cold_rows_s']:,.0f} rows/s, ratio {row['cold_ratio']:.2f} (runs {', '.join(f'{x:.2f}' for x in cold['runs'])} s) | "
                f"warm {row['warm_rows_s']:,.0f} rows/s, ratio {row['warm_ratio']:.2f} (runs {', '.join(f'{x:.2f}' for x in warm['runs'])} s) | "
                f"server RSS idle {row['rss_idle_mb']:.0f}, peak cold {row['rss_cold_mb']:.0f}, warm {row['rss_warm_mb']:.0f} MB | "
                f"load average {load_before[0]:.2f} -> {load_after[0]:.2f}",
                flush=True,
            )
        sampler.stop.set()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        for path in snapshots:
            if path is not None:
                path.unlink(missing_ok=True)
        shutil.rmtree(trash, ignore_errors=True)

    print()
    print(f"| rows | COPY rows/s | cold {args.format} rows/s | cold ratio | warm {args.format} rows/s | warm ratio | "
          "server peak RSS cold / warm | load avg (1 min) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['rows']:,} | {r['copy_rows_s']:,.0f} | {r['cold_rows_s']:,.0f} | {r['cold_ratio']:.2f} | {r['warm_rows_s']:,.0f} | "
              f"{r['warm_ratio']:.2f} | {r['rss_cold_mb']:.0f} / {r['rss_warm_mb']:.0f} MB | {r['load'][0]:.1f}–{r['load'][1]:.1f} |")
    if len(results) >= 2:
        for kind in ("cold", "warm"):
            growth = results[-1][f"rss_{kind}_mb"] - results[0][f"rss_{kind}_mb"]
            print(f"peak RSS growth ({kind}) from {results[0]['rows']:,} to {results[-1]['rows']:,} rows: {growth:+.0f} MB")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
