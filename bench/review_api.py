"""Benchmark: claim-next + submit over the JSON API against a bare Django view, same server, same run.

    .venv/bin/python bench/review_api.py [--examples 1000000] [--clients 50] [--seconds 10] [--rounds 2]

PostgreSQL only (the target is production-shaped): DATABASE_URL, default postgres://postgres@127.0.0.1:5432/review_bench
(created if missing; the examples are loaded once with INSERT ... SELECT generate_series and reused).
gunicorn (gthread) serves the project on 127.0.0.1; 50 clients (processes x threads, keep-alive) run
  bare:   GET /bench/bare/ twice                      (the same number of round trips as a review cycle)
  review: POST /api/review/next/ then POST /api/review/submit/ (token auth, one statement and transaction each)
in bounded phases: bare, then review and bare again, twice. Reports p50/p95 of one cycle and the ratio review/bare (target <= 3),
and writes the figures to /work/notes/BENCH-review.md (or --out)."""
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/review_bench"


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


def load_examples(n: int) -> int:
    """A dataset with n pending examples (10k queries, 100k passages shared between them). Returns its id."""
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
               SELECT (ARRAY['original','daily_life','expert'])[1 + i %% 3], (ARRAY['healthcare','law','finance','cooking'])[1 + i %% 4],
                      'bench query ' || i || ': how long should a soft-boiled egg cook at altitude', '', md5(%s || 'q' || i), now()
               FROM generate_series(1, %s) i RETURNING id""", [tag, nq])
        qids = [r[0] for r in cur.fetchall()]
        cur.execute(
            """INSERT INTO curation_passage (title, text, kind, source, text_hash, created_at)
               SELECT '', 'Bench passage ' || i || '. At high altitude water boils below 100 C, so eggs need a few minutes longer. '
                          || repeat('Filler sentence about cooking times and altitude. ', 6),
                      CASE WHEN i %% 4 = 0 THEN 'hard_negative' ELSE 'positive' END, 'synthetic', md5(%s || 'p' || i), now()
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


def reset_and_tokens(dataset_id: int, clients: int) -> list[str]:
    """A fresh review state and one reviewer (and read-write token) per client."""
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
        cur.execute("VACUUM ANALYZE curation_example") if connection.get_autocommit() else None
    User = get_user_model()
    keys = []
    for i in range(clients):
        user, created = User.objects.get_or_create(username=f"bench-reviewer-{i:02d}")
        if created:
            user.set_unusable_password()
            user.save()
            user_role_set(user, REVIEWER)
        ApiToken.objects.filter(user=user).delete()
        keys.append(api_token_create(user=user, name="bench", scope=ApiToken.Scope.WRITE)[1])
    return keys


# ---------------------------------------------------------------- clients (run in worker processes)


def _request(conn, method, path, body=None, headers=None):
    t0 = time.perf_counter()
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, data, time.perf_counter() - t0


def _client(port, phase, token, dataset_id, start_at, seconds, max_cycles, out, errors):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    while time.time() < start_at:
        time.sleep(0.005)
    deadline = start_at + seconds
    cycles = 0
    try:
        while time.time() < deadline and cycles < max_cycles:
            if phase == "bare":
                s1, _, a = _request(conn, "GET", "/bench/bare/")
                s2, _, b = _request(conn, "GET", "/bench/bare/")
                ok = s1 == s2 == 200
            else:
                s1, body, a = _request(conn, "POST", "/api/review/next/", json.dumps({"dataset": dataset_id}), auth)
                if s1 == 204:
                    break  # the queue is empty
                if s1 != 200:
                    errors.append(f"next {s1} {body[:200]!r}")
                    break
                example = json.loads(body)["example"]["id"]
                decision = "approve" if example % 5 else "reject"
                payload = {"example": example, "decision": decision, "seconds_spent": 3.0}
                if decision == "reject":
                    payload["reason_code"] = 1
                s2, body2, b = _request(conn, "POST", "/api/review/submit/", json.dumps(payload), auth)
                ok = s2 == 201
                if not ok:
                    errors.append(f"submit {s2} {body2[:200]!r}")
            if ok:
                out.append((a, b))
            cycles += 1
    finally:
        conn.close()


def _client_process(args):
    port, phase, tokens, dataset_id, start_at, seconds, max_cycles = args
    per_client, errors = [[] for _ in tokens], []
    threads = [threading.Thread(target=_client, args=(port, phase, t, dataset_id, start_at, seconds, max_cycles, out, errors))
               for t, out in zip(tokens, per_client)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    medians = [sorted(a + b for a, b in out)[len(out) // 2] for out in per_client if out]
    return [x for out in per_client for x in out], errors, medians


def _cpu_by_process() -> dict[int, tuple[str, float]]:
    """pid -> (command name, CPU seconds used so far) for every process on the machine (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
        except OSError:
            continue
        fields = rest.split()
        out[int(stat.parent.name)] = (head.split("(", 1)[1], (int(fields[11]) + int(fields[12])) / tick)
    return out


def _idle_seconds() -> float:
    """CPU seconds the whole machine has spent idle or waiting for I/O (Linux /proc/stat, all cores)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")


def _cpu_used(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds used between two readings, summed by command name. Per process, not per name: a kernel worker's
    name changes with the work it runs (kworker/u8:2-ext4-rsv-conversion, ...-events_unbound), and a difference
    taken by name would count such a thread's whole lifetime. A process started in between counts from zero."""
    used: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        delta = seconds - before.get(pid, (name, 0.0))[1]
        if delta > 0:
            used[name] = used.get(name, 0.0) + delta
    return used


def run_phase(pool, procs, port, phase, tokens, dataset_id, seconds, max_cycles):
    start_at = time.time() + 1.0
    chunks = [tokens[i::procs] for i in range(procs)]
    cpu0 = _cpu_by_process()
    idle0 = []  # read when the clients start: the second before is idle by design
    timer = threading.Timer(max(0.0, start_at - time.time()), lambda: idle0.append(_idle_seconds()))
    timer.start()
    results = list(pool.map(_client_process, [(port, phase, c, dataset_id, start_at, seconds, max_cycles) for c in chunks]))
    cpu1, idle1 = _cpu_by_process(), _idle_seconds()
    timer.join()
    samples, errors, medians = [], [], []
    for out, err, med in results:
        samples.extend(out)
        errors.extend(err)
        medians.extend(med)
    wall = time.time() - start_at
    cpu = _cpu_used(cpu0, cpu1)
    cpu["(idle)"] = idle1 - idle0[0]
    return samples, errors, wall, cpu, sorted(medians)


def cpu_per_cycle(cpu: dict[str, float], cycles: int) -> str:
    """ms of CPU per cycle: the server (gunicorn), PostgreSQL, the clients (python) and kernel workers (kworker)."""
    groups = {"gunicorn": 0.0, "postgres": 0.0, "clients": 0.0, "kernel": 0.0}
    for name, sec in cpu.items():
        key = "gunicorn" if name.startswith("gunicorn") else "postgres" if name.startswith("postgres") else \
            "clients" if name.startswith("python") else "kernel" if name.startswith("kworker") else None
        if key:
            groups[key] += sec
    n = max(cycles, 1)
    return ", ".join(f"{k} {v / n * 1000:.2f}" for k, v in groups.items()) + f"; all {sum(groups.values()) / n * 1000:.2f}"


def summarize(samples):
    import numpy as np

    cycle = np.array([a + b for a, b in samples]) * 1000
    first = np.array([a for a, _ in samples]) * 1000
    second = np.array([b for _, b in samples]) * 1000
    pct = lambda x, q: float(np.percentile(x, q)) if len(x) else float("nan")  # noqa: E731
    return {"n": len(samples), "p50": pct(cycle, 50), "p95": pct(cycle, 95),
            "first_p50": pct(first, 50), "first_p95": pct(first, 95),
            "second_p50": pct(second, 50), "second_p95": pct(second, 95)}


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
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each measured phase")
    p.add_argument("--rounds", type=int, default=2, help="review phases (each followed by a bare one)")
    p.add_argument("--max-cycles", type=int, default=2000, help="per client and phase (a bound besides --seconds)")
    p.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2))
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--procs", type=int, default=5, help="client processes (threads spread over them)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DB))
    p.add_argument("--out", default="/work/notes/BENCH-review.md")
    p.add_argument("--client-side-binding", action="store_true",
                   help="psycopg's default client-side binding (no prepared statements) instead of server_side_binding + prepare_threshold=2")
    p.add_argument("--no-reuse-port", dest="reuse_port", action="store_false",
                   help="gunicorn workers share one listening socket (their accept() races decide who serves whom)")
    p.add_argument("--hold", choices=["bare", "review"], help="only generate this load for --seconds (for profiling)")
    args = p.parse_args(argv)
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("bench/review_api.py measures PostgreSQL: give --database-url postgres://...")
    t_start = time.time()

    ensure_database(args.database_url)
    # Production-shaped connections (README): persistent, and (unless asked otherwise) server-side binding with
    # prepared statements (psycopg prepares a statement a connection has run twice), which lets
    # psycopg prepare the hot queries instead of PostgreSQL planning them on every request.
    db_url = args.database_url + ("&" if "?" in args.database_url else "?") + "conn_max_age=600"
    if not args.client_side_binding:
        db_url += "&server_side_binding=true&prepare_threshold=2"
    env = {**os.environ, "DATABASE_URL": db_url, "DJANGO_SETTINGS_MODULE": "review_bench_settings", "PYTHONPATH": f"{ROOT / 'bench'}:{ROOT}"}
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v", "0"], check=True,
                   env={**env, "DJANGO_SETTINGS_MODULE": "limrank_app.settings"}, cwd=ROOT)
    django_setup(db_url)
    dataset_id = load_examples(args.examples)
    tokens = reset_and_tokens(dataset_id, args.clients)
    from curation.models import Example
    from django.db import connections

    used = Example.objects.filter(dataset_id=dataset_id).count()
    connections.close_all()

    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen(
        [gunicorn, "limrank_app.wsgi:application", "--bind", f"127.0.0.1:{args.port}", "--worker-class", "gthread",
         "--workers", str(args.workers), "--threads", str(args.threads), "--keep-alive", "60", "--log-level", "warning",
         # Each worker listens on its own socket and the kernel spreads connections over them. On one shared socket the
         # workers' accept() races handed one worker 37 of the 50 keep-alive clients in a phase (per-client medians:
         # 13 clients ~20 ms, 37 ~80 ms), a split that changed from phase to phase and moved p50 with it.
         *(["--reuse-port"] if args.reuse_port else [])],
        cwd=ROOT, env=env, start_new_session=True)
    measured = {phase: {"samples": [], "wall": 0.0, "cpu": {}} for phase in ("bare", "review")}
    errors, spreads = [], []
    try:
        wait_ready(args.port, server)
        ctx = get_context("fork")
        with ProcessPoolExecutor(max_workers=args.procs, mp_context=ctx) as pool:
            run_phase(pool, args.procs, args.port, "bare", tokens, dataset_id, 2.0, 50)       # warm-up: workers, connections
            run_phase(pool, args.procs, args.port, "review", tokens, dataset_id, 2.0, 20)
            if args.hold:  # e.g. to attach a profiler to the workers: load without measuring
                print(f"server pid {server.pid}: {args.hold} load for {args.seconds:.0f} s", flush=True)
                run_phase(pool, args.procs, args.port, args.hold, tokens, dataset_id, args.seconds, 10**9)
                return 0
            # bare, then (review, bare) x rounds: every review phase between two bare ones, so a machine that slows
            # down or speeds up during the run (a shared host does) weighs on both sides alike.
            for phase in ["bare"] + ["review", "bare"] * args.rounds:
                out, err, wall, cpu, medians = run_phase(pool, args.procs, args.port, phase, tokens, dataset_id, args.seconds,
                                                         args.max_cycles)
                got = measured[phase]
                got["samples"] += out
                got["wall"] += wall
                for name, sec in cpu.items():
                    got["cpu"][name] = got["cpu"].get(name, 0.0) + sec
                errors += err
                spreads.append((phase, medians))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)

    bare, rev = summarize(measured["bare"]["samples"]), summarize(measured["review"]["samples"])
    ratio50, ratio95 = rev["p50"] / bare["p50"], rev["p95"] / bare["p95"]

    # Every submitted review is in the database, each example reviewed once (reviews_required = 1).
    django_setup(db_url)
    from curation.models import Review, ReviewClaim
    from django.db.models import Count

    stored = Review.objects.count()
    doubled = Review.objects.values("example").annotate(n=Count("id")).filter(n__gt=1).count()
    open_claims = ReviewClaim.objects.count()
    load = os.getloadavg()
    lines = [
        "# bench/review_api.py — review API vs a bare Django view",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} CPU cores (shared; load average "
        f"{load[0]:.1f}), PostgreSQL, gunicorn gthread {args.workers} workers x {args.threads} threads on 127.0.0.1{' (reuse_port)' if args.reuse_port else ''}, "
        f"CONN_MAX_AGE=600, {'client-side binding' if args.client_side_binding else 'server-side binding, prepared statements'}, {args.clients} concurrent clients ({args.procs} processes, keep-alive), {args.seconds:.0f} s per phase, phases bare{' / review / bare' * args.rounds}.",
        f"Examples in the review dataset: **{used:,}** (asked for {args.examples:,}); reviews_required = 1.",
        "",
        "One cycle = two HTTP requests: claim-next + submit (review) vs two GETs of a bare view (floor).",
        "",
        "| | cycles | p50 ms | p95 ms | 1st request p50 / p95 | 2nd request p50 / p95 | throughput cycles/s |",
        "|---|---|---|---|---|---|---|",
        f"| bare Django view x2 | {bare['n']:,} | {bare['p50']:.1f} | {bare['p95']:.1f} | {bare['first_p50']:.1f} / {bare['first_p95']:.1f} "
        f"| {bare['second_p50']:.1f} / {bare['second_p95']:.1f} | {bare['n'] / measured['bare']['wall']:.0f} |",
        f"| claim-next + submit | {rev['n']:,} | {rev['p50']:.1f} | {rev['p95']:.1f} | {rev['first_p50']:.1f} / {rev['first_p95']:.1f} "
        f"| {rev['second_p50']:.1f} / {rev['second_p95']:.1f} | {rev['n'] / measured['review']['wall']:.0f} |",
        "",
        f"**Ratio review / bare: p50 {ratio50:.2f}, p95 {ratio95:.2f}** (target <= 3: {'met' if max(ratio50, ratio95) <= 3 else 'NOT met'}).",
        "",
        "CPU per cycle (ms, whole machine by process name, during each phase): "
        f"bare {cpu_per_cycle(measured['bare']['cpu'], bare['n'])}; review {cpu_per_cycle(measured['review']['cpu'], rev['n'])}.",
        "",
        "Idle share of the machine's cores (idle + I/O wait, /proc/stat) while the clients ran: "
        + ", ".join(f"{phase} {measured[phase]['cpu'].get('(idle)', 0.0) / (measured[phase]['wall'] * (os.cpu_count() or 1)) * 100:.1f}%"
                    for phase in ("bare", "review")) + ".",
        "",
        "Spread over clients, phase by phase (each client's median cycle, ms; min / median / max): "
        + "; ".join(f"{name} {m[0] * 1000:.0f} / {m[len(m) // 2] * 1000:.0f} / {m[-1] * 1000:.0f}"
                    for name, m in spreads if m) + ".",
        "",
        f"Integrity: {stored:,} reviews stored for {rev['n']:,} measured + warm-up cycles; examples reviewed twice: {doubled}; "
        f"claims left open: {open_claims}; client errors: {len(errors)}{(' — first: ' + errors[0]) if errors else ''}.",
        f"Total bench time {time.time() - t_start:.0f} s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if not errors and doubled == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
