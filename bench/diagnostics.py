"""Benchmark: a dataset version's diagnostics on 20,000 examples (issue 22: under a minute on this machine).

    .venv/bin/python bench/diagnostics.py [--examples 20000] [--seed 0]

The examples are built from real text in /work/shared/data: queries from the MS MARCO dev topics (6,980), passages
from the SciFact corpus (5,183 abstracts, ~200 words each), each query paired with a positive and a negative passage
(so queries repeat, as in synthesized data); a twentieth of the queries are planted near-duplicates (one character
changed). The "benchmarks" checked for contamination are SciFact's corpus itself (so every passage is contaminated:
the worst case for the overlap step) and the nine BRIGHT topic files. Times each step of
curation.services.diagnostics.dataset_version_diagnostics_compute (the pure functions it calls on the members' texts;
reading 20,000 frozen members is one SELECT, not timed here) and the total, and prints the figures found.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("LIMRANK_SHARED_DATA", "/work/shared/data"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "limrank_app.settings")


def load(n: int, seed: int):
    rng = random.Random(seed)
    with open(DATA / "msmarco" / "topics.msmarco-passage.dev-subset.txt") as f:
        topics = [row[1] for row in csv.reader(f, delimiter="\t") if len(row) > 1]
    with gzip.open(DATA / "scifact" / "corpus.jsonl.gz", "rt") as f:
        corpus = [(d["title"] + ". " + d["text"]) for d in map(json.loads, f)]
    queries, passages, labels = [], [], []
    while len(queries) < n:
        q = rng.choice(topics)
        if rng.random() < 0.05:
            i = rng.randrange(len(q))
            q = q[:i] + "x" + q[i + 1:]
        pos, neg = rng.choice(corpus), rng.choice(corpus)
        for p, label in ((pos, True), (neg, False)):
            queries.append(q), passages.append(p), labels.append(label)
    bright = {}
    for path in sorted((DATA / "bright" / "topics").glob("*.tsv.gz")):
        with gzip.open(path, "rt") as f:
            bright[path.name.split(".")[1]] = [row[1] for row in csv.reader(f, delimiter="\t") if len(row) > 1]
    return queries[:n], passages[:n], labels[:n], {"scifact-corpus": corpus, **bright}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import django

    django.setup()
    from curation import diagnostics as diag

    queries, passages, labels, sources = load(args.examples, args.seed)
    examples = list(range(len(queries)))
    print(f"{len(queries)} examples, {len(set(queries))} distinct queries, {len(set(passages))} distinct passages; "
          f"benchmarks: {', '.join(f'{k} ({len(v)})' for k, v in sources.items())}")
    times, out = {}, {}
    total = time.perf_counter()
    for name, fn in (
        ("shortcuts", lambda: diag.shortcut_aucs(queries=queries, passages=passages, labels=labels)),
        ("duplicate_queries", lambda: diag.near_duplicates(texts=queries, kind="query", examples=examples)),
        ("duplicate_passages", lambda: diag.near_duplicates(texts=passages, kind="passage", examples=examples)),
        ("contamination", lambda: diag.contamination_summary(
            hits=diag.contaminated(queries=queries, passages=passages, sources=sources), examples=examples)),
    ):
        start = time.perf_counter()
        out[name] = fn()
        times[name] = time.perf_counter() - start
        print(f"{name:<20} {times[name]:6.2f} s")
    print(f"{'total':<20} {time.perf_counter() - total:6.2f} s")
    print("shortcut AUCs:", {k: v["auc"] for k, v in out["shortcuts"]["features"].items()})
    for key in ("duplicate_queries", "duplicate_passages"):
        print(f"{key}: {out[key]['clusters']} clusters, {out[key]['texts_in_clusters']} of {out[key]['distinct']} texts")
    print("contamination:", {k: v["examples"] for k, v in out["contamination"]["benchmarks"].items()})


if __name__ == "__main__":
    main()
