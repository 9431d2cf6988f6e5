"""Benchmark (issue 21): a version build against PostgreSQL's own INSERT ... SELECT of the same members, at one size.

    .venv/bin/python bench/build_job.py [--size 100000] [--repeat 3] [--db-url postgres://.../scale_build_bench]
    .venv/bin/python bench/build_job.py --profile     # cProfile of one build (top 25 by cumulative time)

Loads --size examples once (the review benchmark's loader) into its own database and approves them all, so the
build has --size members; then times dataset_version_build (rolled back) and bench/scale.py's INSERT ... SELECT
(rolled back), alternately, --repeat times each. Last line: one JSON object with the medians and the ratio."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import review_api  # noqa: E402
import scale  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db-url", default=os.environ.get("BUILD_BENCH_DB_URL",
                                                           "postgres://postgres@127.0.0.1:5432/scale_build_bench_h21b"))
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    review_api.ensure_database(args.db_url)
    review_api.django_setup(args.db_url)
    from django.db import connection

    dataset_id = review_api.load_examples(args.size)
    with connection.cursor() as cur:
        cur.execute("UPDATE curation_example SET status = 'approved' WHERE dataset_id = %s AND status <> 'approved'",
                    [dataset_id])
        cur.execute("ANALYZE")
    if args.profile:
        import cProfile
        import pstats

        from curation.models import Dataset
        from curation.services.datasets import dataset_version_build

        ds = Dataset.objects.get(pk=dataset_id)
        prof = cProfile.Profile()
        prof.enable()
        scale.timed_rolled_back(lambda: dataset_version_build(
            dataset=ds, filters={"status": ["approved"]}, recipe={"seed": 1, "shuffle": False}, name="profile"))
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        return 0
    runs = [scale.build_measure(dataset_id) for _ in range(args.repeat)]
    result = {
        "members": runs[0]["build_members"],
        "build_seconds": [r["build_seconds"] for r in runs],
        "insert_select_seconds": [r["insert_select_seconds"] for r in runs],
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }
    result["build_seconds_p50"] = statistics.median(result["build_seconds"])
    result["insert_select_seconds_p50"] = statistics.median(result["insert_select_seconds"])
    result["build_ratio_vs_insert_select"] = round(result["insert_select_seconds_p50"] / result["build_seconds_p50"], 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"# {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    sys.exit(code)
