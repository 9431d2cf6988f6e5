"""Benchmark (issue 21): peak memory of examples_import against the file's size (streamed imports).

    .venv/bin/python bench/import_memory.py [--rows 20000,100000] [--module-file path/to/old/imports.py]

Each size runs in a fresh process: Rank1 rows are written to a temporary JSONL file (streamed to disk), then
examples_import reads it inside a transaction that is rolled back. The process's peak RSS (ru_maxrss) is read
before and after the import. --module-file runs another version of curation/services/imports.py (e.g. the one
before streaming: `git show <rev>:curation/services/imports.py > /tmp/imports_before.py`) for a before/after.
Last line: one JSON object {"<rows>": {"file_mb", "seconds", "rss_before_mb", "rss_peak_mb", "rss_growth_mb"}}."""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
DB_URL = os.environ.get("BUILD_BENCH_DB_URL", "postgres://postgres@127.0.0.1:5432/scale_build_bench_h21b")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def one(rows: int, module_file: str | None) -> dict:
    # DEBUG keeps every query's SQL in memory (connection.queries): off, as in production.
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "import-memory-bench-only-" + "k" * 50)
    import review_api

    review_api.ensure_database(DB_URL)
    review_api.django_setup(DB_URL)
    import scale

    if module_file:
        spec = importlib.util.spec_from_file_location("imports_under_test", module_file)
        imports = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = imports  # dataclasses look their module up there
        spec.loader.exec_module(imports)
    else:
        from curation.services import imports
    tag = f"mem-{rows}-{int(time.time())}"
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for i in range(rows):
            f.write(json.dumps({"query": f"memory import {tag} query {i}: what is the boiling point of water at {i} m",
                                "passage": f"Memory passage {tag} {i}. Water boils at a lower temperature at altitude; " * 3,
                                "reasoning": "The passage answers the question. true", "label": i % 4 != 0}) + "\n")
        path = f.name
    before = _rss_mb()
    t0 = time.perf_counter()
    seconds = scale.timed_rolled_back(lambda: imports.examples_import(file=path, filename="memory.jsonl"))
    peak = _rss_mb()
    size = os.path.getsize(path)
    os.unlink(path)
    return {"file_mb": round(size / 2**20, 1), "seconds": round(seconds, 1), "wall_seconds": round(time.perf_counter() - t0, 1),
            "rss_before_mb": round(before, 1), "rss_peak_mb": round(peak, 1), "rss_growth_mb": round(peak - before, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="20000,100000")
    parser.add_argument("--module-file", default=None)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.module_file)))
        return 0
    results = {}
    for n in (int(x) for x in args.rows.split(",")):
        cmd = [sys.executable, __file__, "--one", str(n)] + (["--module-file", args.module_file] if args.module_file else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        results[str(n)] = json.loads(out)
        print(f"{n:>8} rows: {results[str(n)]}", file=sys.stderr)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
