"""Benchmark: the review queue under reviewers' load, over the JSON API, on PostgreSQL under gunicorn.

    .venv/bin/python bench/review_api.py --examples 100000 [--reviewers 100] [--mean-s 3] [--seconds 60]

The target (issue 19): 1,000,000 examples, 100 reviewers each deciding on average every 3 s (open loop: each
reviewer's decision times are a Poisson process, drawn in advance and independent of how fast the server answers;
a reviewer claims, waits until its next decision time, submits, claims again), 60 s: p95 of claim-next and of submit
<= 100 ms, 0 errors, 0 double reviews. Then, as information, the closed-loop saturation: --closed-clients clients
doing claim + submit back to back, beside the same clients calling a bare Django view twice (same round trips).

DATABASE_URL (default postgres://postgres@127.0.0.1:5432/review_bench, created and migrated if missing); the examples
are loaded once with INSERT ... SELECT generate_series and reused, the review state is reset before each run.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/review_bench?conn_max_age=600"


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres", query=""))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


def django_setup(db_url: str) -> None:
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "limrank_app.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def load_examples(n: int) -> int:
    """A dataset with n pending examples (queries and passages shared between them). Returns its id."""
    from django.db import connection

    from curation.models import Dataset, Example

    ds, _ = Dataset.objects.get_or_create(name=f"bench-review-{n}", defaults={"reviews_required": 1, "claim_minutes": 15})
    have = Example.objects.filter(dataset=ds).count()
    if have >= n:
        print(f"reusing {have:,} examples in dataset {ds.name}")
        return ds.pk
    t0 = time.perf_counter()
    nq, np_ = min(10_000, n), min(100_000, n)
    tag = f"b{ds.pk}-{int(time.time())}"
    with connection.cursor() as cur:
        cur.execute(
            """INSERT INTO curation_generatedquery (variant, domain, text, instruction, text_hash, created_at)
               SELECT (ARRAY['original','daily_life','expert'])[1 + i %% 3], (ARRAY['healthcare','law','finance'])[1 + i %% 3],
                      'bench query ' || i || ': how long should a soft-boiled egg cook at altitude', '', md5(%s || 'q' || i), now()
               FROM generate_series(1, %s) i RETURNING id""", [tag, nq])
        qids = [r[0] for r in cur.fetchall()]
        cur.execute(
            """INSERT INTO curation_passage (title, text, kind, source, text_hash, created_at)
               SELECT '', 'Bench passage ' || i || '. At high altitude water boils below 100 C, so eggs need longer. '
                          || repeat('Filler sentence about cooking times and altitude. ', 6),
                      'positive', 'synthetic', md5(%s || 'p' || i), now()
               FROM generate_series(1, %s) i RETURNING id""", [tag, np_])
        pids = [r[0] for r in cur.fetchall()]
        cur.execute(
            """INSERT INTO curation_example (dataset_id, query_id, passage_id, intended_label, reasoning_trace, reasoner_judgment,
                   judgment_votes, origin, status, filter_reason, prompt_versions, reasoner_model, content_hash, reviews_done,
                   created_at, updated_at)
               SELECT %s, (%s::bigint[])[1 + i %% %s], (%s::bigint[])[1 + i %% %s], i %% 4 <> 0,
                      'The query asks for a cooking time; the passage gives one. Relevant.', i %% 4 <> 0,
                      '[]'::jsonb, 'synthetic', 'pending_review', '', '{"rewrite": 1}'::jsonb, '',
                      md5(%s || 'e' || i) || md5('e' || i || %s), 0, now(), now()
               FROM generate_series(%s, %s) i""", [ds.pk, qids, nq, pids, np_, tag, tag, have + 1, n])
        cur.execute("ANALYZE curation_example; ANALYZE curation_generatedquery; ANALYZE curation_passage")
    print(f"loaded {n - have:,} examples in {time.perf_counter() - t0:.1f} s")
    return ds.pk


def reset_and_tokens(dataset_id: int, reviewers: int) -> list[str]:
    """A fresh review state and one reviewer (with a read-write token) per simulated reviewer."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from limrank_app.models import ApiToken
    from limrank_app.services import api_token_create
    from limrank_app.roles import REVIEWER, roles_ensure, user_role_set

    roles_ensure()
    with connection.cursor() as cur:
        cur.execute("TRUNCATE curation_reviewclaim, curation_examplerevision, curation_review")
        cur.execute("UPDATE curation_example SET status = 'pending_review', reviews_done = 0 "
                    "WHERE dataset_id = %s AND (status <> 'pending_review' OR reviews_done <> 0)", [dataset_id])
        cur.execute("VACUUM ANALYZE curation_example")
    User = get_user_model()
    keys = []
    for i in range(reviewers):
        user, created = User.objects.get_or_create(username=f"bench-reviewer-{i:03d}")
        if created:
            user.set_unusable_password()
            user.save()
            user_role_set(user, REVIEWER)
        ApiToken.objects.filter(user=user).delete()
        keys.append(api_token_create(user=user, name="bench", scope=ApiToken.Scope.WRITE)[1])
    return keys


def integrity(dataset_id: int) -> dict:
    """Double reviews (more live reviews on an example than it needs, or a reviewer twice) and counters that
    disagree with the reviews (a lost or doubled write)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            """SELECT count(*) FROM (SELECT r.example_id FROM curation_review r JOIN curation_example e ON e.id = r.example_id
               JOIN curation_dataset d ON d.id = e.dataset_id
               WHERE NOT r.undone AND NOT r.is_adjudication AND e.dataset_id = %s
               GROUP BY r.example_id, d.reviews_required HAVING count(*) > d.reviews_required
                   OR count(DISTINCT r.reviewer_id) < count(*)) x""", [dataset_id])
        doubled = cur.fetchone()[0]
        cur.execute(
            """SELECT count(*) FROM curation_example e WHERE e.dataset_id = %s AND e.reviews_done <>
               (SELECT count(*) FROM curation_review r WHERE r.example_id = e.id AND NOT r.undone AND NOT r.is_adjudication)""",
            [dataset_id])
        mismatched = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM curation_review")
        reviews = cur.fetchone()[0]
    return {"double_reviews": doubled, "counter_mismatches": mismatched, "reviews": reviews}


# ---------------------------------------------------------------- load


class Client:
    def __init__(self, port: int, token: str | None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body=None) -> tuple[int, bytes, float]:
        t0 = time.perf_counter()
        self.conn.request(method, path, body=None if body is None else json.dumps(body), headers=self.headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, data, time.perf_counter() - t0


def _decide(example_id: int) -> dict:
    decision = "approve" if example_id % 5 else "reject"
    return {"example": example_id, "decision": decision, "seconds_spent": 3.0,
            **({"reason_code": 1} if decision == "reject" else {})}


def reviewer_open_loop(port, token, dataset_id, start_at, seconds, mean_s, seed, out, errors):
    """One reviewer: claim, wait for the next decision time (Poisson: exponential gaps of mean_s), submit, claim."""
    rng = random.Random(seed)
    client = Client(port, token)
    deadline = start_at + seconds
    at = start_at + rng.uniform(0, mean_s)  # reviewers do not start in step
    while time.time() < at:
        time.sleep(0.01)
    status, body, t = client.call("POST", "/api/review/next/", {"dataset": dataset_id})
    out["next"].append(t)
    if status != 200:
        errors.append(f"next {status} {body[:200]!r}")
        return
    example = json.loads(body)["example"]["id"]
    while True:
        at += rng.expovariate(1 / mean_s)
        if at >= deadline:
            return
        lag = at - time.time()
        if lag > 0:
            time.sleep(lag)
        else:
            out["late"].append(-lag)  # the server's answers made this reviewer miss its decision time
        status, body, t = client.call("POST", "/api/review/submit/", _decide(example))
        out["submit"].append(t)
        if status != 201:
            errors.append(f"submit {status} {body[:200]!r}")
        status, body, t = client.call("POST", "/api/review/next/", {"dataset": dataset_id})
        out["next"].append(t)
        if status != 200:
            errors.append(f"next {status} {body[:200]!r}")
            return
        example = json.loads(body)["example"]["id"]


def client_closed_loop(port, token, dataset_id, deadline, bare, out, errors):
    client = Client(port, token)
    while time.time() < deadline:
        if bare:
            s1, _, _ = client.call("GET", "/bench/bare/")
            s2, _, _ = client.call("GET", "/bench/bare/")
            ok = s1 == s2 == 200
        else:
            s1, body, _ = client.call("POST", "/api/review/next/", {"dataset": dataset_id})
            if s1 != 200:
                errors.append(f"next {s1} {body[:200]!r}")
                return
            s2, body, _ = client.call("POST", "/api/review/submit/", _decide(json.loads(body)["example"]["id"]))
            ok = s2 == 201
            if not ok:
                errors.append(f"submit {s2} {body[:200]!r}")
        if ok:
            out.append(1)


def run_threads(targets) -> None:
    threads = [threading.Thread(target=fn, args=args, daemon=True) for fn, args in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def pct(values, q) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] * 1000


def wait_ready(port, proc, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/bench/bare/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("gunicorn did not come up")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=1_000_000)
    p.add_argument("--reviewers", type=int, default=100)
    p.add_argument("--mean-s", type=float, default=3.0, help="mean time between a reviewer's decisions")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--closed-clients", type=int, default=20, help="closed-loop clients (0: skip that part)")
    p.add_argument("--closed-seconds", type=float, default=15.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    args = p.parse_args(argv)
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("bench/review_api.py measures PostgreSQL: give --database-url postgres://...")

    ensure_database(args.database_url)
    django_setup(args.database_url)
    dataset_id = load_examples(args.examples)
    tokens = reset_and_tokens(dataset_id, max(args.reviewers, args.closed_clients))
    from django.db import connections

    connections.close_all()
    env = {**os.environ, "DATABASE_URL": args.database_url, "DJANGO_SETTINGS_MODULE": "review_bench_settings",
           "PYTHONPATH": f"{ROOT / 'bench'}:{ROOT}"}
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen(
        [gunicorn, "limrank_app.wsgi:application", "--bind", f"127.0.0.1:{args.port}", "--worker-class", "gthread",
         "--workers", str(args.workers), "--threads", str(args.threads), "--keep-alive", "75", "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True)
    report = {"examples": args.examples, "reviewers": args.reviewers, "mean_s": args.mean_s, "seconds": args.seconds,
              "server": f"gunicorn gthread {args.workers}x{args.threads}", "load_avg_start": os.getloadavg()}
    try:
        wait_ready(args.port, server)
        out, errors = {"next": [], "submit": [], "late": []}, []
        start_at = time.time() + 1.0
        run_threads([(reviewer_open_loop, (args.port, tokens[i], dataset_id, start_at, args.seconds, args.mean_s,
                                           args.seed * 1000 + i, out, errors)) for i in range(args.reviewers)])
        report["open_loop"] = {
            "claims": len(out["next"]), "submits": len(out["submit"]), "errors": len(errors),
            "next_p50_ms": pct(out["next"], 50), "next_p95_ms": pct(out["next"], 95), "next_p99_ms": pct(out["next"], 99),
            "submit_p50_ms": pct(out["submit"], 50), "submit_p95_ms": pct(out["submit"], 95),
            "submit_p99_ms": pct(out["submit"], 99), "late_decisions": len(out["late"]),
            **integrity(dataset_id), "first_errors": errors[:5],
        }
        if args.closed_clients:
            for phase in ("bare", "review"):
                done, errs = [], []
                deadline = time.time() + args.closed_seconds
                run_threads([(client_closed_loop, (args.port, tokens[i], dataset_id, deadline, phase == "bare", done, errs))
                             for i in range(args.closed_clients)])
                report[f"closed_{phase}_cycles_per_s"] = round(len(done) / args.closed_seconds, 1)
                report[f"closed_{phase}_errors"] = len(errs)
            report["closed_integrity"] = integrity(dataset_id)
    finally:
        server.terminate()
        server.wait(timeout=30)
    report["load_avg_end"] = os.getloadavg()
    print(json.dumps(report, indent=2, default=str))
    ok = report["open_loop"]
    target = (ok["next_p95_ms"] <= 100 and ok["submit_p95_ms"] <= 100 and ok["errors"] == 0
              and ok["double_reviews"] == 0 and ok["counter_mismatches"] == 0)
    print(f"target (p95 <= 100 ms each, 0 errors, 0 double reviews): {'met' if target else 'NOT met'} "
          f"at {args.examples:,} examples")
    return 0 if target else 1


if __name__ == "__main__":
    sys.exit(main())
