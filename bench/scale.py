"""Benchmark (issue 21): every page and API list at 1K / 100K / 1M examples, imports against COPY, version builds.

    .venv/bin/python bench/scale.py [--sizes 1000,100000,1000000] [--repeat 5]

Each size gets its own PostgreSQL database (scale_bench_<size>; created, migrated and loaded once, then reused),
loaded by the review benchmark's loader (bench/review_api.py: INSERT ... SELECT generate_series), then given the
issue's state: 30% approved, 10% rejected, 1% in adjudication, the rest pending, a third of them rank1; about 0.85
reviews per example from three reviewers. Then, per size:

- pages and API lists under gunicorn (gthread 2x4, DEBUG off, a Redis cache shared by the workers): the first answer
  ("cold": cached aggregates computed) and the median of --repeat after a warm-up, with the load average;
- EXPLAIN (ANALYZE) of the list queries: any sequential scan of curation_example, any sort spilling to disk;
- import of min(size, 100,000) Rank1 rows (examples_import) against COPY FROM of the same rows into the same three
  tables (queries, passages, examples), both rolled back: the ratio of rows/s (target >= 0.3);
- a version build of the approved examples (dataset_version_build) against INSERT ... SELECT of the same members
  by PostgreSQL itself, both rolled back (target >= 0.3);
- bulk approve of min(100,000, pending) examples (examples_bulk_decide), rolled back.

Prints a table, then as its last line one JSON object {"<size>": {"pages": {...}, "import_ratio_vs_copy": ...,
"build_seconds": ..., ...}, ...}.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import review_api  # noqa: E402  (bench/review_api.py: the loader and the server helpers)

PORT = 8787
PAGES = [
    "/review/browse/?q=777",
    "/review/browse/?q=altitude",
    "/review/browse/?status=approved",
    "/review/dashboard/",
    "/datasets/versions/{version}/",
    "/api/dataset-versions/{version}/datasheet/",
    "/review/quality/",
    "/api/examples/?status=approved&page_size=100",
    "/api/examples/?status=approved&page_size=100 (next page)",
    "/examples/?status=pending_review",
    "/",
]


class Rollback(Exception):
    pass


def timed_rolled_back(fn) -> float:
    """Seconds fn takes inside a transaction that is then rolled back."""
    from django.db import transaction

    t0 = time.perf_counter()
    try:
        with transaction.atomic():
            fn()
            elapsed = time.perf_counter() - t0
            raise Rollback
    except Rollback:
        pass
    return elapsed


def state_load(dataset_id: int) -> dict:
    """The issue's review state on the loaded examples (once: kept in the database)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from limrank_app.roles import ADMIN, REVIEWER, roles_ensure, user_role_set

    roles_ensure()
    User = get_user_model()
    users = {}
    for name, role in (("scale-r1", REVIEWER), ("scale-r2", REVIEWER), ("scale-r3", REVIEWER), ("scale-admin", ADMIN)):
        user, created = User.objects.get_or_create(username=name)
        if created:
            user.set_unusable_password()
            user.save()
            user_role_set(user, role)
        users[name] = user
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM curation_review r JOIN curation_example e ON e.id = r.example_id "
                    "WHERE e.dataset_id = %s", [dataset_id])
        if cur.fetchone()[0] == 0:
            t0 = time.perf_counter()
            cur.execute(
                """UPDATE curation_example SET
                       status = CASE WHEN id %% 100 < 30 THEN 'approved' WHEN id %% 100 < 40 THEN 'rejected'
                                     WHEN id %% 100 = 40 THEN 'in_adjudication' ELSE 'pending_review' END,
                       origin = CASE WHEN id %% 3 = 0 THEN 'rank1' ELSE 'synthetic' END,
                       reviews_done = CASE WHEN id %% 100 <= 40 THEN 2 ELSE 0 END
                   WHERE dataset_id = %s""", [dataset_id])
            r1, r2, r3 = (users[f"scale-r{i}"].pk for i in (1, 2, 3))
            votes = [  # (reviewer, decision, which examples)
                (r1, "approve", "status = 'approved'"), (r2, "approve", "status = 'approved' AND id %% 10 <> 0"),
                (r3, "reject", "status = 'approved' AND id %% 10 = 0"),
                (r2, "reject", "status = 'rejected'"), (r3, "reject", "status = 'rejected'"),
                (r1, "approve", "status = 'in_adjudication'"), (r3, "reject", "status = 'in_adjudication'"),
            ]
            for reviewer, decision, where in votes:
                cur.execute(
                    f"""INSERT INTO curation_review (example_id, reviewer_id, decision, edits, reason, reason_code,
                            seconds_spent, is_adjudication, undone, created_at)
                        SELECT id, %s, %s, '{{}}'::jsonb, '', NULL, 2 + id %% 9, false, false, now()
                        FROM curation_example WHERE dataset_id = %s AND {where}""", [reviewer, decision, dataset_id])
            cur.execute("VACUUM ANALYZE curation_example")
            cur.execute("VACUUM ANALYZE curation_review")
            print(f"review state loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    return users


def session_cookie(user) -> str:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    s = SessionStore()
    s[SESSION_KEY] = str(user.pk)
    s[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[-1] if getattr(settings, "AUTHENTICATION_BACKENDS", None) \
        else "django.contrib.auth.backends.ModelBackend"
    s[HASH_SESSION_KEY] = user.get_session_auth_hash()
    s.create()
    return f"{settings.SESSION_COOKIE_NAME}={s.session_key}"


def version_build(dataset_id: int):
    """A version of the approved examples (built once and kept: the datasheet pages read it). Returns (version, s)."""
    from curation.models import Dataset, DatasetVersion
    from curation.services.datasets import dataset_version_build

    ds = Dataset.objects.get(pk=dataset_id)
    existing = DatasetVersion.objects.filter(dataset=ds, name="scale").first()
    if existing:
        return existing, None
    t0 = time.perf_counter()
    v = dataset_version_build(dataset=ds, filters={"status": ["approved"]}, recipe={"seed": 1, "shuffle": False},
                              name="scale")
    return v, time.perf_counter() - t0


def build_measure(dataset_id: int) -> dict:
    """A build of the same members again (rolled back) against PostgreSQL's own INSERT ... SELECT of them."""
    from django.db import connection

    from curation.models import Dataset, DatasetVersion
    from curation.services.datasets import dataset_version_build

    ds = Dataset.objects.get(pk=dataset_id)
    build_s = timed_rolled_back(lambda: dataset_version_build(
        dataset=ds, filters={"status": ["approved"]}, recipe={"seed": 1, "shuffle": False}, name="scale-again"))

    def insert_select():
        v = DatasetVersion.objects.create(dataset=ds, version=10**9, name="reference")
        with connection.cursor() as cur:
            cur.execute(
                """INSERT INTO curation_datasetversionmember (version_id, example_id, position, query_text, instruction,
                       passage_title, passage_text, reasoning_trace, label, origin, variant, domain, reasoner_judgment,
                       reasoner_model, prompt_versions, content_hash)
                   SELECT %s, e.id, row_number() OVER (ORDER BY e.content_hash) - 1, q.text, q.instruction, p.title,
                          p.text, e.reasoning_trace, e.intended_label, e.origin, q.variant, q.domain,
                          e.reasoner_judgment, e.reasoner_model, e.prompt_versions,
                          encode(sha256(convert_to(q.text || p.text || e.reasoning_trace, 'UTF8')), 'hex')
                   FROM curation_example e JOIN curation_generatedquery q ON q.id = e.query_id
                        JOIN curation_passage p ON p.id = e.passage_id
                   WHERE e.dataset_id = %s AND e.status = 'approved'""", [v.pk, dataset_id])
            return cur.rowcount

    insert_s = timed_rolled_back(insert_select)
    members = ds.examples.filter(status="approved").count()
    return {"build_seconds": round(build_s, 2), "build_members": members,
            "insert_select_seconds": round(insert_s, 2), "build_ratio_vs_insert_select": round(insert_s / build_s, 3)}


def import_measure(size: int) -> dict:
    """examples_import of m Rank1 rows against COPY FROM of the same rows, both rolled back."""
    from curation.hashing import example_content_hash, text_hash
    from curation.models import Example, GeneratedQuery, Passage
    from curation.services.bulk import bulk_ids_reserve
    from curation.services.imports import examples_import

    m = min(size, 100_000)
    tag = f"{size}-{int(time.time())}"
    rows = [{"query": f"scale import {tag} query {i}: what is the boiling point of water at {i} metres",
             "passage": f"Scale passage {tag} {i}. Water boils at a lower temperature at altitude; " * 3,
             "reasoning": "The passage answers the question. true", "label": i % 4 != 0} for i in range(m)]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        path = f.name
    import_s = timed_rolled_back(lambda: examples_import(file=path, filename="scale.jsonl"))
    os.unlink(path)

    # The database's own speed: the same rows, already hashed, COPYed into the same three tables.
    from django.db import connection
    from django.utils import timezone

    now = timezone.now()
    q_rows = [("original", "", r["query"], "", text_hash(r["query"]), now) for r in rows]
    p_rows = [("", r["passage"], "positive" if r["label"] else "hard_negative", "rank1", text_hash(r["passage"]), now)
              for r in rows]
    hashes = [example_content_hash(query=r["query"], passage=r["passage"], label=r["label"]) for r in rows]

    def copy_all():
        qids = bulk_ids_reserve(model=GeneratedQuery, n=m)
        pids = bulk_ids_reserve(model=Passage, n=m)
        with connection.connection.cursor() as cur:
            with cur.copy("COPY curation_generatedquery (id, variant, domain, text, instruction, text_hash, created_at) "
                          "FROM STDIN") as cp:
                for i, r in zip(qids, q_rows):
                    cp.write_row((i, *r))
            with cur.copy("COPY curation_passage (id, title, text, kind, source, text_hash, created_at) FROM STDIN") as cp:
                for i, r in zip(pids, p_rows):
                    cp.write_row((i, *r))
            with cur.copy("COPY curation_example (query_id, passage_id, intended_label, reasoning_trace, "
                          "reasoner_judgment, judgment_votes, origin, status, filter_reason, prompt_versions, "
                          "reasoner_model, content_hash, reviews_done, created_at, updated_at) FROM STDIN") as cp:
                for qi, pi, r, h in zip(qids, pids, rows, hashes):
                    cp.write_row((qi, pi, r["label"], r["reasoning"], r["label"], "[]", "rank1", "approved", "", "{}",
                                  "", h, 0, now, now))

    copy_s = timed_rolled_back(copy_all)
    assert Example.objects.filter(content_hash=hashes[0]).count() == 0  # both rolled back
    return {"import_rows": m, "import_seconds": round(import_s, 2), "copy_seconds": round(copy_s, 2),
            "import_ratio_vs_copy": round(copy_s / import_s, 3)}


def bulk_measure(dataset_id: int, admin) -> dict:
    from curation.models import Example
    from curation.services.review import examples_bulk_decide

    pending = Example.objects.filter(dataset_id=dataset_id, status="pending_review").order_by("id")
    n = min(100_000, pending.count())
    last = pending.values_list("id", flat=True)[n - 1]
    qs = pending.filter(id__lte=last)
    s = timed_rolled_back(lambda: examples_bulk_decide(admin=admin, examples=qs, decision="approve"))
    return {"bulk_approve_examples": n, "bulk_approve_seconds": round(s, 2)}


EXPLAINED = {
    "browse ?q=777 (page)": lambda sel, ds: sel.example_browse(filters={"q": "777"})[:50],
    "browse ?q=altitude (page)": lambda sel, ds: sel.example_browse(filters={"q": "altitude"})[:50],
    "browse ?status=approved (page)": lambda sel, ds: sel.example_browse(filters={"status": "approved"})[:50],
    "api examples ?status=approved": lambda sel, ds: sel.Example.objects.filter(status__in=["approved"]).order_by("-id")[:101],
}


def explain_all(dataset_id: int) -> dict:
    from django.db import connection

    from curation.selectors import review as sel

    out = {}
    for name, make in EXPLAINED.items():
        qs = make(sel, dataset_id)
        plan = qs.explain(analyze=True)
        # and the capped count the browse page runs on the same filter
        out[name] = {"seq_scan_example": "Seq Scan on curation_example" in plan,
                     "sort_on_disk": "external merge" in plan or "Disk:" in plan}
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return out


def server_start(db_url: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": db_url, "DJANGO_SETTINGS_MODULE": "review_bench_settings", "DEBUG": "false",
           "PYTHONPATH": f"{BENCH}:{ROOT}",
           "CACHE_URL": os.environ.get("SCALE_CACHE_URL", "redis://127.0.0.1:6379/5")}
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen(
        [gunicorn, "limrank_app.wsgi:application", "--bind", f"127.0.0.1:{PORT}", "--worker-class", "gthread",
         "--workers", "2", "--threads", "4", "--timeout", "600", "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True)
    review_api.wait_ready(PORT, server)
    return server


def pages_measure(version_id: int, cookie: str, repeat: int) -> dict:
    import http.client

    def get(path):
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=600)
        t0 = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": cookie, "Accept": "application/json, text/html"})
        resp = conn.getresponse()
        body = resp.read()
        elapsed = time.perf_counter() - t0
        conn.close()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status} {body[:300]!r}")
        return elapsed, body

    out = {}
    next_path = None
    for page in PAGES:
        if page.endswith("(next page)"):
            path = next_path
        else:
            path = page.format(version=version_id)
        cold, body = get(path)
        if page.startswith("/api/examples/"):
            nxt = json.loads(body).get("next")
            next_path = nxt[nxt.index("/api/"):] if nxt else path
        times = [get(path)[0] for _ in range(repeat)]
        out[page] = {"cold": round(cold, 3), "p50": round(statistics.median(times), 3)}
    return out


def one_size(size: int, repeat: int) -> dict:
    db_url = f"postgres://postgres@127.0.0.1:5432/scale_bench_{size}?conn_max_age=600"
    # The server runs with DEBUG off, which needs a key; the session made here for it is signed with the same one.
    os.environ.setdefault("SECRET_KEY", "scale-bench-only-" + "k" * 50)
    review_api.ensure_database(db_url)
    review_api.django_setup(db_url)
    from django.db import connections

    dataset_id = review_api.load_examples(size)
    users = state_load(dataset_id)
    version, first_build_s = version_build(dataset_id)
    result = {"examples": size, "load_avg_start": [round(x, 2) for x in os.getloadavg()]}
    if first_build_s is not None:
        result["first_build_seconds"] = round(first_build_s, 2)
    result["explain"] = explain_all(dataset_id)
    cookie = session_cookie(users["scale-admin"])
    connections.close_all()
    server = server_start(db_url)
    try:
        from django.core.cache import caches  # noqa: F401  (the server's cache is Redis: start it empty)
        import redis

        redis.Redis.from_url(os.environ.get("SCALE_CACHE_URL", "redis://127.0.0.1:6379/5")).flushdb()
        result["pages"] = pages_measure(version.pk, cookie, repeat)
    finally:
        server.terminate()
        server.wait(timeout=30)
    result.update(import_measure(size))
    result.update(build_measure(dataset_id))
    result.update(bulk_measure(dataset_id, users["scale-admin"]))
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def table(results: dict) -> str:
    sizes = list(results)
    lines = ["| page / operation | " + " | ".join(f"{int(s):,} (p50 / cold)" for s in sizes) + " |",
             "|---|" + "---|" * len(sizes)]
    for page in PAGES:
        cells = []
        for s in sizes:
            p = results[s]["pages"].get(page)
            cells.append(f"{p['p50']:.3f} s / {p['cold']:.3f} s" if p else "—")
        lines.append(f"| `{page}` | " + " | ".join(cells) + " |")
    for key, label in (("import_ratio_vs_copy", "import rows/s ÷ COPY rows/s"), ("import_seconds", "import (s)"),
                       ("copy_seconds", "COPY of the same rows (s)"), ("build_seconds", "version build (s)"),
                       ("build_members", "members built"), ("build_ratio_vs_insert_select", "build ÷ INSERT…SELECT rate"),
                       ("bulk_approve_seconds", "bulk approve (s)"), ("bulk_approve_examples", "examples approved")):
        lines.append(f"| {label} | " + " | ".join(str(results[s].get(key, "—")) for s in sizes) + " |")
    for name in EXPLAINED:
        lines.append(f"| EXPLAIN {name}: seq scan of curation_example / sort on disk | " + " | ".join(
            f"{results[s]['explain'][name]['seq_scan_example']} / {results[s]['explain'][name]['sort_on_disk']}"
            for s in sizes) + " |")
    lines.append("| load average start → end | " + " | ".join(
        f"{results[s]['load_avg_start']} → {results[s]['load_avg_end']}" for s in sizes) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,100000,1000000")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size in this process
    args = p.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(one_size(args.one, args.repeat)), flush=True)
        return 0
    results = {}
    for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
        # One process per size: each size has its own database, and Django is set up once per process.
        proc = subprocess.run([sys.executable, __file__, "--one", str(size), "--repeat", str(args.repeat)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
        sys.stdout.write("".join(line + "\n" for line in proc.stdout.splitlines() if not line.startswith("RESULT ")))
        found = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not found:
            raise SystemExit(f"size {size}: failed (exit {proc.returncode})")
        results[str(size)] = json.loads(found[-1][len("RESULT "):])
    print(table(results))
    print(json.dumps({s: {"pages": {k: v["p50"] for k, v in r["pages"].items()},
                          "pages_cold": {k: v["cold"] for k, v in r["pages"].items()},
                          **{k: v for k, v in r.items() if k != "pages"}} for s, r in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
