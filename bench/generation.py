"""Benchmark: LLM calls in flight during a generation run, and a 100,000-line seed import.

    .venv/bin/python bench/generation.py [--latency 0.2] [--levels 8,32,128] [--seconds 8] [--import-lines 100000]
    .venv/bin/python bench/generation.py --sdk-only [--levels 32,128]   # the bare SDK, httpx vs aiohttp transport

Starts the local OpenAI-compatible server (tests/llm_server.py) in its own process with a fixed latency,
then runs real generation runs (the same service the Celery task calls: rewrite -> passages -> reasoner,
all calls recorded as LLMCall rows) at each in-flight level. A perfect client keeps `in_flight` calls
open at all times, so its ceiling is in_flight / latency calls per second; the ratio reported is
achieved calls/s divided by that ceiling (target >= 0.8 at 32 in flight). The floor measured in the same
run is one call at a time through the runs' own path, `LLMClient.acomplete` on an event loop (sequential
calls/s x latency, ~1.0 when the client adds nothing). Per level it also prints the CPU time per call of
this process (the run: client, parsing, writes) and of the server process, and the load average.
Also times `seeds_import` of a generated 100,000-line MS MARCO-style TSV (one transaction, bulk writes).

Uses its own SQLite database in a temporary LIMRANK_VAR_DIR (or DATABASE_URL when --use-database-url).
Bounded: about --seconds of generation per level, plus setup; a few minutes at most.
"""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CALLS_PER_PAIR = 1 + 2 * (2 + 3)  # rewrite; per variant: positive + hard negatives, then 3 reasoner calls (k=1, 2 negatives)


def setup_django(use_database_url: bool) -> None:
    tmp = tempfile.mkdtemp(prefix="limrank-bench-gen-")
    os.environ["LIMRANK_VAR_DIR"] = tmp
    if not use_database_url:
        os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "limrank_app.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.llm_server", "--port", "0", "--latency", str(latency), "--disagree-rate", "0.15"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    line = proc.stdout.readline().strip()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"llm_server did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1]


def bench_import(lines: int) -> dict:
    from curation.models import SeedQuery
    from curation.services.imports import seeds_import

    words = "how what why when does can the a of to in for is on with best cost long time".split()
    body = "".join(
        f"{900000 + i}\t{words[i % 7]} {words[(i // 7) % 11]} {words[(i // 77) % 13]} query number {i} about topic {i * 7919 % 100003}\n"
        for i in range(lines)
    ).encode()
    started = time.perf_counter()
    result = seeds_import(file=body, filename="bench-topics.tsv")
    seconds = time.perf_counter() - started
    assert result.created == lines and SeedQuery.objects.filter(source="msmarco").count() >= lines
    return {"lines": lines, "seconds": seconds, "lines_per_s": lines / seconds}


def sequential_floor(url: str, latency: float, n: int = 10) -> float:
    """calls/s x latency for one call at a time through the runs' client path (1.0 = no client overhead)."""
    import asyncio

    from curation.llm import LLMClient, LLMEndpoint, record_later

    client = LLMClient(LLMEndpoint("generator", url, "local", "k"), recorder=record_later, max_connections=2)

    async def calls() -> float:
        try:
            await client.acomplete(messages=[{"role": "user", "content": "warm up"}])
            started = time.perf_counter()
            for i in range(n):
                await client.acomplete(messages=[{"role": "user", "content": f"hello {i}"}])
            return time.perf_counter() - started
        finally:
            await client.aclose()

    return (n / asyncio.run(calls())) * latency


def server_cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def bench_sdk_only(url: str, latency: float, level: int, transport: str, server_pid: int, n: int = 1500) -> dict:
    """The bare SDK (AsyncOpenAI, `level` calls open on one event loop, no database, no parsing) on one HTTP
    transport: how much of a run's CPU per call is the client library's own."""
    import asyncio

    import httpx2
    import openai

    limits = httpx2.Limits(max_connections=level, max_keepalive_connections=level)
    http = {"httpx": openai.DefaultAsyncHttpxClient, "aiohttp": openai.DefaultAioHttpClient}[transport]
    prompt = "Determine if the passage is relevant. Answer only with 'true' or 'false'.\nQuery: {i}\nPassage: " + "text " * 80

    async def calls(count: int) -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="k", max_retries=2, http_client=http(limits=limits))
        slots = asyncio.Semaphore(level)

        async def one(i: int) -> None:
            async with slots:
                raw = await client.chat.completions.with_raw_response.create(
                    model="local", messages=[{"role": "user", "content": prompt.format(i=i)}], temperature=0.6)
                raw.parse()

        try:
            await asyncio.gather(*(one(i) for i in range(count)))
        finally:
            await client.close()

    asyncio.run(calls(level))  # warm up
    cpu, server_cpu, started = time.process_time(), server_cpu_seconds(server_pid), time.perf_counter()
    asyncio.run(calls(n))
    wall = time.perf_counter() - started
    cpu, server_cpu = time.process_time() - cpu, server_cpu_seconds(server_pid) - server_cpu
    return {"transport": transport, "in_flight": level, "ratio": n / wall / (level / latency),
            "cpu_ms_per_call": cpu * 1000 / n, "server_cpu_ms_per_call": server_cpu * 1000 / n, "load": os.getloadavg()[0]}


def bench_level(in_flight: int, latency: float, seconds: float, seed_offset: int, server_pid: int) -> dict:
    from django.conf import settings

    from curation.models import GenerationRun, LLMCall, Persona, SeedQuery
    from curation.services.generation import generation_run_create, generation_run_execute
    from limrank_app.jobs import job_claim

    ceiling = in_flight / latency
    pairs = max(in_flight, math.ceil(ceiling * seconds / CALLS_PER_PAIR))
    seed_ids = list(SeedQuery.objects.order_by("id").values_list("id", flat=True)[seed_offset : seed_offset + pairs])
    persona_ids = [Persona.objects.order_by("id").values_list("id", flat=True).first()]
    run = generation_run_create(
        n_seeds=len(seed_ids), n_personas=1, seed_ids=seed_ids, persona_ids=persona_ids,
        in_flight=in_flight, consistency_k=1, n_hard_negatives=2, enqueue=False,
        generator_model="local-gen", reasoner_model="local-reasoner",
    )
    assert job_claim(GenerationRun, pk=run.pk)
    run.refresh_from_db()
    cpu, server_cpu, started = time.process_time(), server_cpu_seconds(server_pid), time.perf_counter()
    run = generation_run_execute(run=run)
    wall = time.perf_counter() - started
    cpu, server_cpu = time.process_time() - cpu, server_cpu_seconds(server_pid) - server_cpu
    calls = LLMCall.objects.filter(generation_run=run).count()
    achieved = calls / wall
    # Steady state: the middle half of the call phase (rows are written within ~20 ms of their answer),
    # without the ramp-up (clients, plan) and the tail (the last pairs' dependent calls, the summary).
    stamps = sorted(LLMCall.objects.filter(generation_run=run).values_list("created_at", flat=True))
    first, last = stamps[0], stamps[-1]
    lo, hi = first + (last - first) / 4, first + (last - first) * 3 / 4
    middle = sum(1 for t in stamps if lo <= t < hi) / (hi - lo).total_seconds()
    return {
        "in_flight": in_flight, "pairs": len(seed_ids), "calls": calls, "seconds": wall, "calls_per_s": achieved,
        "ceiling": ceiling, "ratio": achieved / ceiling, "steady_calls_per_s": middle, "steady_ratio": middle / ceiling,
        "status": run.status, "kept": run.stats["kept"],
        "cpu_ms_per_call": cpu * 1000 / calls, "server_cpu_ms_per_call": server_cpu * 1000 / calls, "load": os.getloadavg()[0],
        "db": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--levels", default="8,32,128")
    ap.add_argument("--seconds", type=float, default=8.0, help="target generation time per level")
    ap.add_argument("--import-lines", type=int, default=100_000)
    ap.add_argument("--use-database-url", action="store_true", help="use DATABASE_URL instead of a temporary SQLite file")
    ap.add_argument("--sdk-only", action="store_true", help="only the bare SDK on its httpx and aiohttp transports (no runs)")
    args = ap.parse_args()
    if args.sdk_only:
        sys.path.insert(0, str(ROOT))
        proc, url = start_server(args.latency)
        try:
            for level in [int(x) for x in args.levels.split(",")]:
                for transport in ("httpx", "aiohttp"):
                    r = bench_sdk_only(url, args.latency, level, transport, proc.pid)
                    print(f"  SDK only, {transport:>7}, {level:>4} in flight: ratio {r['ratio']:.3f}; CPU/call {r['cpu_ms_per_call']:.2f} ms client, "
                          f"{r['server_cpu_ms_per_call']:.2f} ms server; load {r['load']:.1f}", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        return
    setup_django(args.use_database_url)

    from django.conf import settings

    from tests import factories

    print(f"seed import: {args.import_lines:,} lines ...", flush=True)
    imp = bench_import(args.import_lines)
    print(f"  {imp['seconds']:.2f} s, {imp['lines_per_s']:,.0f} lines/s", flush=True)
    factories.PersonaFactory.create_batch(3)

    proc, url = start_server(args.latency)
    try:
        settings.LIMRANK_GENERATOR_BASE_URL = settings.LIMRANK_REASONER_BASE_URL = url
        settings.LIMRANK_LLM_TIMEOUT = 30.0
        floor = sequential_floor(url, args.latency)
        print(f"server {url}, latency {args.latency * 1000:.0f} ms; sequential floor {floor:.3f} (1.0 = no client overhead)", flush=True)
        rows, offset = [], 0
        for level in [int(x) for x in args.levels.split(",")]:
            row = bench_level(level, args.latency, args.seconds, offset, proc.pid)
            offset += row["pairs"]
            rows.append(row)
            print(f"  in flight {level:>4}: {row['calls']:>5} calls in {row['seconds']:.2f} s = {row['calls_per_s']:7.1f} calls/s; "
                  f"ceiling {row['ceiling']:6.1f}; ratio {row['ratio']:.3f}; steady state {row['steady_calls_per_s']:.1f} calls/s, "
                  f"ratio {row['steady_ratio']:.3f} ({row['status']}); CPU/call {row['cpu_ms_per_call']:.2f} ms run, "
                  f"{row['server_cpu_ms_per_call']:.2f} ms server; load {row['load']:.1f}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    target = next((r for r in rows if r["in_flight"] == 32), None)
    if target:
        for key, label in (("ratio", "whole run"), ("steady_ratio", "steady state")):
            verdict = "PASS" if target[key] >= 0.8 else "FAIL"
            print(f"target: ratio >= 0.8 at 32 in flight ({label}): {target[key]:.3f} {verdict}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
