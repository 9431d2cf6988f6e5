"""Export benchmark: a frozen version of N approved examples in PostgreSQL, exported over HTTP as JSONL by
gunicorn on 127.0.0.1, against the floor of `COPY (SELECT <the same columns> ...) TO STDOUT` of the same rows
in the same run. Reports rows/s, the ratio (target >= 0.5) and the server's peak RSS at each size (target: flat).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/limrank_bench_export .venv/bin/python bench/export.py
    ... bench/export.py --sizes 20000,200000        # scaled down
    ... bench/export.py --format rank1             # the training format instead of JSONL

The database named in DATABASE_URL is dropped and created again (it must be a scratch database: the script
refuses names without "bench"). Examples are bulk-loaded with COPY; the version's members are written with one
INSERT ... SELECT (the same snapshot the build service writes; the service itself is tested in tests/).
"""
from __future__ import annotations

import argparse
import os
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
    p.add_argument("--repeat", type=int, default=3, help="best of N for both the export and the COPY floor")
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
        cur.execute("ANALYZE curation_datasetversionmember")


def _copy_floor(version_id: int) -> tuple[float, int]:
    """Seconds and bytes for COPY of the same rows and columns, in the same order, read by the client."""
    from django.db import connection

    from curation.exports import FIELDS

    cols = ", ".join(f'"{f}"' for f in FIELDS)
    sql = f'COPY (SELECT {cols} FROM curation_datasetversionmember WHERE version_id = {int(version_id)} ORDER BY "position") TO STDOUT'
    with connection.cursor() as cur:
        t = time.perf_counter()
        size = 0
        with cur.cursor.copy(sql) as copy:
            for block in copy:
                size += len(block)
        return time.perf_counter() - t, size


class RssSampler(threading.Thread):
    """Peak resident memory of the gunicorn master and its workers, sampled every 20 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def current(self) -> int:
        import psutil

        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total = max(total, p.memory_info().rss)  # the largest single process: the worker serving the export
            except psutil.NoSuchProcess:
                pass
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


def _http_export(port: int, version_id: int, key: str, fmt: str) -> tuple[float, int, int]:
    """A plain HTTP/1.0 GET read with recv_into: the server streams without chunked encoding and the client adds
    as little as the COPY floor's client does."""
    t = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port), timeout=600)
    sock.sendall(
        f"GET /api/dataset-versions/{version_id}/export/?format={fmt} HTTP/1.0\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\n\r\n".encode()
    )
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    head = b""
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
            head = None
            size += len(body)
            lines += body.count(b"\n")
            continue
        size += n
        lines += buf.count(b"\n", 0, n)
    sock.close()
    return time.perf_counter() - t, size, lines


def main() -> None:
    args = _args()
    url = os.environ.get("DATABASE_URL", DEFAULT_DB)
    if not url.startswith("postgres"):
        raise SystemExit("bench/export.py measures PostgreSQL: set DATABASE_URL=postgres://.../<name with 'bench'>")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    started = time.perf_counter()
    _recreate_database(url)
    _django(url, var_dir="/tmp/limrank-bench-export")

    from curation.models import ApiToken, Dataset, DatasetVersion
    from curation.services.tokens import api_token_create
    from django.contrib.auth import get_user_model
    from limrank_app.roles import ADMIN, roles_ensure, user_role_set

    roles_ensure()
    admin = get_user_model().objects.create_user("bench-admin", password="bench-admin-pw")
    user_role_set(admin, ADMIN)
    _, key = api_token_create(user=admin, name="bench", scope=ApiToken.Scope.READ)

    port = _free_port()
    server = _start_gunicorn(url, port, args.workers)
    results = []
    offset = 0
    try:
        sampler = RssSampler(server.pid)
        sampler.start()
        # Warm the worker (imports, connection) so the baseline is the steady state.
        baseline_ds = Dataset.objects.create(name="warm-up")
        warm = DatasetVersion.objects.create(dataset=baseline_ds, version=1, status="ready", content_hash="0" * 64, example_count=1000)
        _load(1000, offset, baseline_ds.pk, warm.pk)
        offset += 1000
        _http_export(port, warm.pk, key, args.format)
        for n in sizes:
            if time.perf_counter() - started > args.max_seconds:
                print(f"skipping {n:,}: past --max-seconds", flush=True)
                continue
            ds = Dataset.objects.create(name=f"bench-{n}")
            version = DatasetVersion.objects.create(dataset=ds, version=1, status="ready", content_hash="b" * 64, example_count=n)
            t = time.perf_counter()
            _load(n, offset, ds.pk, version.pk)
            offset += n
            load_s = time.perf_counter() - t
            copy_s, copy_bytes = min(_copy_floor(version.pk) for _ in range(args.repeat))
            rss_before = sampler.current()
            sampler.peak = rss_before
            runs = [_http_export(port, version.pk, key, args.format) for _ in range(args.repeat)]
            http_s, http_bytes, http_lines = min(runs)
            if args.format != "parquet" and http_lines != n:
                raise SystemExit(f"export returned {http_lines} lines, expected {n}")
            row = {
                "rows": n, "load_s": load_s, "copy_rows_s": n / copy_s, "copy_mb": copy_bytes / 1e6,
                "http_rows_s": n / http_s, "http_mb": http_bytes / 1e6, "ratio": (n / http_s) / (n / copy_s),
                "rss_before_mb": rss_before / 1e6, "rss_peak_mb": sampler.peak / 1e6,
            }
            results.append(row)
            print(
                f"{n:>9,} rows: load {load_s:6.1f} s | COPY {row['copy_rows_s']:>10,.0f} rows/s ({row['copy_mb']:.0f} MB) | "
                f"HTTP {args.format} {row['http_rows_s']:>10,.0f} rows/s ({row['http_mb']:.0f} MB) | ratio {row['ratio']:.2f} | "
                f"server RSS {row['rss_before_mb']:.0f} -> peak {row['rss_peak_mb']:.0f} MB",
                flush=True,
            )
        sampler.stop.set()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()

    print()
    print(f"| rows | COPY rows/s | HTTP {args.format} rows/s | ratio (target >= 0.5) | server peak RSS |")
    print("|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['rows']:,} | {r['copy_rows_s']:,.0f} | {r['http_rows_s']:,.0f} | {r['ratio']:.2f} | {r['rss_peak_mb']:.0f} MB |")
    if len(results) >= 2:
        growth = results[-1]["rss_peak_mb"] - results[0]["rss_peak_mb"]
        print(f"\npeak RSS growth from {results[0]['rows']:,} to {results[-1]['rows']:,} rows: {growth:+.0f} MB")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
