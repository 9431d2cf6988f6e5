"""The studio's loop on a CPU: curated examples -> a trained reranker that beats BM25 on queries it never saw.

Everything goes through the studio's own services (the paths a user takes from the pages and commands):
1. SciFact's 300 test queries (evaluation/data/scifact, the shipped BEIR copy) are split in two halves by a seeded
   shuffle; each half is imported as a benchmark (`scifact-loop-s<seed>-train` / `-heldout`, the whole corpus).
2. Pairs of the first half: its qrels positives, and the top `--negatives` non-relevant documents of the studio's
   BM25 (evaluation.first_stage, run on the train benchmark) as hard negatives.
3. Control: the same pairs with `--flip` of their labels flipped (seeded), imported through the import service into
   dataset `loop-cpu-s<seed>-unreviewed` (pending review) and frozen as a version without any review.
4. Curated: the correct pairs imported into `loop-cpu-s<seed>-curated`; a reviewer (an admin, the qrels as oracle)
   approves every example whose label is right and rejects the flipped ones, in bulk (examples_bulk_decide); the
   version is built from the approved examples of both datasets (the import skips pairs the control already holds:
   examples are unique by content).
5. Each version trains the `embedding` backbone (preset cpu-demo) and the cross-encoder (preset
   cpu-demo-cross-encoder with the overrides below); the artifacts are registered as reranker models.
6. Eval runs on the held-out benchmark only: BM25, the untrained MiniLM (bi-encoder; cross-encoder with a fresh head),
   curated and unreviewed, each backbone reranking BM25's top k. The runs are on the leaderboard (column
   scifact-loop-s<seed>-heldout), linked to their eval runs.

Prints one table, stores it (ARTIFACTS_DIR/loop_cpu/loop-s<seed>-<stamp>.md and .json), and ends with one JSON line:
{"embedding": {"bm25", "untrained", "curated", "unreviewed"}, "cross-encoder": {...}, "split_seed": ...}.

Run: .venv/bin/python bench/loop_cpu.py [--seed 13] (docs/cpu-loop.md). One split seed per database: examples are
unique by content, so another seed's overlapping pairs would be skipped (the command says so and stops).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "limrank_app.settings")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SCIFACT = ROOT / "evaluation" / "data" / "scifact"
REVIEWER = "loop-cpu-reviewer"
EMBEDDING_PRESET = "cpu-demo"
CROSS_PRESET = "cpu-demo-cross-encoder"
# CPU caps (recorded with each result; the figures behind them are in bench/RESULTS.md): a 2-core machine cannot
# rerank BM25's top 100 with three MiniLMs at 256 tokens in 30 minutes beside the training, so the loop works at 128
# tokens (the length all-MiniLM-L6-v2 was trained at) and reranks BM25's top 30 with the bi-encoder (the depth the
# trained model does best at; the untrained one loses with depth) and the top 10 with the cross-encoder.
# --emb-set / --ce-set override these.
EMBEDDING_OVERRIDES = {"max_length": 128}
CROSS_OVERRIDES = {"max_length": 128}


class LoopError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- pure pieces


def split_queries(qids, *, seed: int, max_queries: int = 0) -> tuple[list[str], list[str]]:
    """Seeded shuffle of the sorted ids, cut in two halves (the first one trains). `max_queries` > 0 caps each half."""
    order = sorted(qids)
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    first, second = order[:half], order[half:]
    if max_queries > 0:
        first, second = first[:max_queries], second[:max_queries]
    return first, second


def parsed_subset(parsed, qids, *, name: str, description: str):
    """The benchmark restricted to `qids` (all documents kept: the first stage searches the whole corpus)."""
    from evaluation.benchmarks import ParsedBenchmark

    keep = set(qids)
    return ParsedBenchmark(
        name=name, format=parsed.format, queries={q: r for q, r in parsed.queries.items() if q in keep},
        documents=parsed.documents,
        qrels={side: {q: d for q, d in by_q.items() if q in keep} for side, by_q in parsed.qrels.items()},
        description=description, source=parsed.source or "allenai/scifact via BEIR (evaluation/data/scifact)",
    )


def pair_rows(*, queries: dict[str, str], documents: dict[str, tuple[str, str]], qrels: dict[str, dict[str, int]],
              bm25: dict[str, dict[str, float]], negatives: int) -> list[dict]:
    """Import rows (the studio's JSONL fields): each query's qrels positives and its top `negatives` BM25 documents
    that are not relevant, in query order."""
    rows = []
    for qid, text in queries.items():
        relevant = {d for d, g in qrels.get(qid, {}).items() if g > 0}
        ranked = sorted(bm25.get(qid, {}).items(), key=lambda kv: -kv[1])
        hard = [d for d, _ in ranked if d not in relevant][:negatives]
        for docid, label in [*((d, True) for d in sorted(relevant)), *((d, False) for d in hard)]:
            title, body = documents[docid]
            rows.append({"query": text, "title": title, "passage": body, "label": label, "query_id": qid,
                         "doc_id": docid, "domain": "scifact"})
    return rows


def rows_flip(rows: list[dict], *, fraction: float, seed: int) -> list[dict]:
    """A copy with round(fraction × n) labels flipped (positive <-> negative), chosen with the seed."""
    flipped = [dict(r) for r in rows]
    for i in random.Random(f"loop-cpu-flip:{seed}").sample(range(len(rows)), round(fraction * len(rows))):
        flipped[i]["label"] = not flipped[i]["label"]
    return flipped


def rows_jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def table_text(result: dict) -> str:
    """The one table: nDCG@10 on the held-out half, per backbone."""
    lines = [f"{'backbone':<28} {'BM25':>7} {'untrained':>10} {'curated':>8} {'unreviewed':>11} {'cur-unrev':>10}"]
    for backbone in ("embedding", "cross-encoder"):
        row = result.get(backbone)
        if not row:
            continue
        depth = result["settings"]["top_k" if backbone == "embedding" else "ce_top_k"]
        gap = row["curated"] - row["unreviewed"]
        lines.append(f"{backbone + f' (BM25 top {depth})':<28} {row['bm25']:>7.4f} {row['untrained']:>10.4f} "
                     f"{row['curated']:>8.4f} {row['unreviewed']:>11.4f} {gap:>+10.4f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- studio steps


def benchmark_ensure(parsed):
    """The split's benchmark, imported once (a rerun with the same seed reuses it, and its BM25 cache)."""
    from evaluation.models import Benchmark
    from evaluation.services import benchmark_import

    bench = Benchmark.objects.filter(name=parsed.name).first()
    if bench is not None:
        if bench.n_queries != len(parsed.queries):
            raise LoopError(f"benchmark {parsed.name} exists with {bench.n_queries} queries, not {len(parsed.queries)}")
        return bench
    return benchmark_import(parsed=parsed)


def bm25_candidates(bench, *, top_k: int) -> dict[str, dict[str, float]]:
    from evaluation.services import _queries, first_stage_run

    return first_stage_run(benchmark=bench, first_stage="bm25", top_k=top_k, queries=_queries(bench))


def reviewer_ensure():
    from django.contrib.auth import get_user_model

    from limrank_app.roles import ADMIN, user_role_set

    user, _ = get_user_model().objects.get_or_create(username=REVIEWER)
    user_role_set(user, ADMIN)
    return user


def dataset_ensure(name: str, description: str):
    from curation.models import Dataset
    from curation.services.datasets import dataset_create

    return Dataset.objects.filter(name=name).first() or dataset_create(name=name, description=description)


def versions_build(*, rows: list[dict], flipped: list[dict], seed: int, tag: str, log=print):
    """(curated version, unreviewed version, counts) through import, review and build services."""
    from curation.hashing import text_normalize
    from curation.models import Example
    from curation.services.datasets import dataset_version_build
    from curation.services.imports import examples_import
    from curation.services.review import examples_bulk_decide
    from curation.models import Review

    control = dataset_ensure(f"loop-cpu-{tag}-unreviewed", "bench/loop_cpu.py: SciFact first-half pairs with "
                             "30% of labels flipped, never reviewed (what unreviewed synthetic data looks like)")
    curated = dataset_ensure(f"loop-cpu-{tag}-curated", "bench/loop_cpu.py: SciFact first-half pairs (qrels "
                             "positives, BM25 hard negatives), reviewed")
    imp_c = examples_import(file=rows_jsonl(flipped), filename=f"loop-cpu-{tag}-unreviewed.jsonl",
                            origin=Example.Origin.IMPORTED, dataset=control)
    unreviewed = dataset_version_build(dataset=control, filters={"status": "any"}, recipe={"seed": seed},
                                       name="unreviewed (labels flipped, no review)", render_now=True)
    imp_r = examples_import(file=rows_jsonl(rows), filename=f"loop-cpu-{tag}-curated.jsonl",
                            origin=Example.Origin.IMPORTED, dataset=curated)
    log(f"import: unreviewed {imp_c.created} new / {imp_c.duplicates} already there; curated {imp_r.created} new / "
        f"{imp_r.duplicates} already there (held by the unreviewed dataset)")

    # The reviewer: an admin who knows the truth (the qrels) approves what is right and rejects what is not.
    # Texts compared as the import stored them (whitespace collapsed: curation.hashing.text_normalize).
    truth = {tuple(map(text_normalize, (r["query"], r["title"], r["passage"]))): r["label"] for r in rows}
    pool = Example.objects.filter(dataset__in=[control, curated])
    approve, reject = [], []
    for pk, q, t, p, label in pool.values_list("id", "query__text", "passage__title", "passage__text",
                                               "intended_label"):
        (approve if truth.get(tuple(map(text_normalize, (q, t, p)))) == label else reject).append(pk)
    reviewer = reviewer_ensure()
    n_ok = examples_bulk_decide(admin=reviewer, examples=Example.objects.filter(pk__in=approve),
                                decision=Review.Decision.APPROVE, reason="loop_cpu: label agrees with the qrels")
    n_bad = examples_bulk_decide(admin=reviewer, examples=Example.objects.filter(pk__in=reject),
                                 decision=Review.Decision.REJECT, reason="loop_cpu: label contradicts the qrels")
    log(f"review: {n_ok} approved, {n_bad} rejected (bulk, by {REVIEWER})")
    curated_version = dataset_version_build(
        dataset=curated, filters={"datasets": [curated.pk, control.pk], "status": [Example.Status.APPROVED]},
        recipe={"seed": seed}, name="curated (reviewed)", render_now=True)
    for version, expected in ((unreviewed, len(flipped)), (curated_version, len(rows))):
        if version.example_count != expected:
            raise LoopError(
                f"{version}: {version.example_count} members, {expected} expected. Some pairs are held by another "
                "dataset (an earlier run with another split seed?): examples are unique by content, so run one seed "
                "per database (a fresh LIMRANK database, or delete the loop-cpu-* datasets).")
    counts = {"pairs": len(rows), "positives": sum(r["label"] for r in rows),
              "flipped": sum(a["label"] != b["label"] for a, b in zip(rows, flipped)),
              "approved": n_ok, "rejected": n_bad}
    return curated_version, unreviewed, counts


def train(version, *, preset: str, overrides: dict, name: str):
    """A training job through the service, run in this process (as `manage.py train --foreground`)."""
    from limrank_app.jobs import job_claim
    from training.models import TrainingJob
    from training.services import training_job_create, training_job_execute

    job = training_job_create(dataset_version=version, preset=preset, overrides=overrides, name=name, enqueue=False)
    if not job_claim(TrainingJob, pk=job.pk):
        raise LoopError(f"could not claim training job {job.pk}")
    job = training_job_execute(job=TrainingJob.objects.get(pk=job.pk))
    if job.status != "succeeded":
        raise LoopError(f"training job {job.pk} ({name}) {job.status}: {job.error}")
    return job


def evaluate(bench, model, *, top_k: int, tag: str):
    from evaluation.models import EvalRun
    from evaluation.services import eval_run_create, eval_run_execute

    run = eval_run_create(benchmark=bench, model=model, top_k=top_k, params={"loop_cpu": tag}, enqueue=False)
    eval_run_execute(run_id=run.pk)
    run = EvalRun.objects.get(pk=run.pk)
    if run.status != "succeeded":
        raise LoopError(f"eval run {run.pk} ({model.name}) {run.status}: {run.error}")
    return run


def parse_sets(pairs: list[str]) -> dict[str, str]:
    from training.presets import overrides_parse

    return overrides_parse(pairs)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=13, help="split seed (also the flips' and the versions' seed)")
    parser.add_argument("--negatives", type=int, default=3, help="BM25 hard negatives per training query")
    parser.add_argument("--flip", type=float, default=0.3, help="fraction of the control's labels flipped")
    parser.add_argument("--top-k", type=int, default=30, help="BM25 depth the embedding model reranks")
    parser.add_argument("--ce-top-k", type=int, default=10, help="BM25 depth the cross-encoder reranks (CPU cap)")
    parser.add_argument("--max-queries", type=int, default=0, help="> 0: cap each half (smoke runs)")
    parser.add_argument("--emb-set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override the {EMBEDDING_PRESET} preset (on top of {EMBEDDING_OVERRIDES})")
    parser.add_argument("--ce-set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override the {CROSS_PRESET} preset (on top of {CROSS_OVERRIDES})")
    parser.add_argument("--ce-from-embedding", action="store_true",
                        help="start each cross-encoder from the bi-encoder trained on the same version (fresh head)")
    parser.add_argument("--skip-cross-encoder", action="store_true")
    parser.add_argument("--name", default="", help="names of benchmarks and datasets (default s<seed>)")
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.conf import settings

    from evaluation.benchmarks import parse_beir
    from evaluation.models import RerankerModel
    from evaluation.services import reranker_model_register
    from training.presets import minilm_path

    t_all = time.perf_counter()
    timings: dict[str, float] = {}

    def clock(key, started):
        timings[key] = round(timings.get(key, 0.0) + time.perf_counter() - started, 1)

    def log(line):
        print(f"[{time.perf_counter() - t_all:7.1f}s] {line}", flush=True)

    tag = args.name or f"s{args.seed}"
    t = time.perf_counter()
    parsed = parse_beir(SCIFACT, name="scifact")
    first, second = split_queries(parsed.queries, seed=args.seed, max_queries=args.max_queries)
    cap = f", capped at {args.max_queries} per half" if args.max_queries else ""
    train_bench = benchmark_ensure(parsed_subset(
        parsed, first, name=f"scifact-loop-{tag}-train",
        description=f"SciFact test queries, first half of the split with seed {args.seed}{cap}: bench/loop_cpu.py trains on it"))
    heldout = benchmark_ensure(parsed_subset(
        parsed, second, name=f"scifact-loop-{tag}-heldout",
        description=f"SciFact test queries, second half of the split with seed {args.seed}{cap}: held out by bench/loop_cpu.py"))
    clock("benchmarks", t)
    log(f"split seed {args.seed}: {len(first)} training queries, {len(second)} held out ({train_bench.name}, {heldout.name})")

    t = time.perf_counter()
    bm25_train = bm25_candidates(train_bench, top_k=max(args.negatives + 10, 20))
    rows = pair_rows(queries={q: parsed.queries[q].text for q in first}, documents=parsed.documents,
                     qrels=parsed.qrels["og"], bm25=bm25_train, negatives=args.negatives)
    flipped = rows_flip(rows, fraction=args.flip, seed=args.seed)
    curated_v, unreviewed_v, counts = versions_build(rows=rows, flipped=flipped, seed=args.seed, tag=tag, log=log)
    clock("import, review, build", t)
    log(f"versions: curated {curated_v.pk} ({curated_v.example_count}), unreviewed {unreviewed_v.pk} "
        f"({unreviewed_v.example_count}); {counts}")

    bm25_model = reranker_model_register(name="bm25", kind=RerankerModel.Kind.BM25, config={"note": "first stage only"})
    t = time.perf_counter()
    bm25_run = evaluate(heldout, bm25_model, top_k=args.top_k, tag=tag)
    clock("eval bm25", t)
    bm25 = bm25_run.metrics["ndcg_cut_10"]
    log(f"BM25 on the held-out half: nDCG@10 {bm25:.4f} (run {bm25_run.pk})")

    emb_overrides = {**EMBEDDING_OVERRIDES, **parse_sets(args.emb_set)}
    ce_overrides = {**CROSS_OVERRIDES, **parse_sets(args.ce_set)}
    backbones = [("embedding", EMBEDDING_PRESET, emb_overrides, args.top_k)]
    if not args.skip_cross_encoder:
        backbones.append(("cross-encoder", CROSS_PRESET, ce_overrides, args.ce_top_k))
    result: dict = {}
    runs: dict = {"bm25": bm25_run.pk}
    jobs: dict = {}
    minilm = minilm_path()
    trained_embedding: dict[str, str] = {}
    for backbone, preset, overrides, depth in backbones:
        row = {"bm25": round(bm25, 4)}
        kind = RerankerModel.Kind.EMBEDDING if backbone == "embedding" else RerankerModel.Kind.CROSS_ENCODER
        max_length = int(overrides.get("max_length", 256))
        untrained = reranker_model_register(
            name=f"minilm-{backbone}-untrained", kind=kind, path=minilm, base_model=minilm,
            config={"max_length": max_length, "note": "the shipped MiniLM, not fine-tuned"
                    + ("" if backbone == "embedding" else " (fresh classification head)")})
        t = time.perf_counter()
        run = evaluate(heldout, untrained, top_k=depth, tag=tag)
        clock(f"eval {backbone} untrained", t)
        row["untrained"], runs[f"{backbone}/untrained"] = round(run.metrics["ndcg_cut_10"], 4), run.pk
        log(f"{backbone} untrained: {row['untrained']:.4f} (run {run.pk}, {run.params.get('rerank_seconds')} s)")
        for arm, version in (("curated", curated_v), ("unreviewed", unreviewed_v)):
            values = dict(overrides)
            if backbone == "cross-encoder" and args.ce_from_embedding and arm in trained_embedding:
                values["base_model"] = trained_embedding[arm]
            t = time.perf_counter()
            job = train(version, preset=preset, overrides=values, name=f"loop-cpu {tag}: {backbone} on {arm}")
            clock(f"train {backbone} {arm}", t)
            if backbone == "embedding":
                trained_embedding[arm] = job.artifact.path
            model = RerankerModel.objects.get(artifact=job.artifact)
            log(f"{backbone} {arm}: job {job.pk}, {job.progress_done} steps, loss "
                f"{(job.metrics or {}).get('train_loss')}, {timings[f'train {backbone} {arm}']} s")
            t = time.perf_counter()
            run = evaluate(heldout, model, top_k=depth, tag=tag)
            clock(f"eval {backbone} {arm}", t)
            row[arm], runs[f"{backbone}/{arm}"] = round(run.metrics["ndcg_cut_10"], 4), run.pk
            jobs[f"{backbone}/{arm}"] = job.pk
            log(f"{backbone} {arm}: {row[arm]:.4f} (run {run.pk}, model {model.name}, "
                f"{run.params.get('rerank_seconds')} s)")
        result[backbone] = row

    total = round(time.perf_counter() - t_all, 1)
    summary = {**result, "split_seed": args.seed}
    stored = {
        **summary, "queries": {"train": len(first), "heldout": len(second)}, "counts": counts,
        "settings": {"top_k": args.top_k, "ce_top_k": args.ce_top_k, "negatives": args.negatives, "flip": args.flip,
                     "max_queries": args.max_queries, "embedding_preset": EMBEDDING_PRESET,
                     "embedding_overrides": emb_overrides, "cross_preset": CROSS_PRESET,
                     "cross_overrides": ce_overrides, "ce_from_embedding": args.ce_from_embedding},
        "benchmarks": {"train": train_bench.name, "heldout": heldout.name},
        "dataset_versions": {"curated": curated_v.pk, "unreviewed": unreviewed_v.pk},
        "eval_runs": runs, "training_jobs": jobs, "seconds": {**timings, "total": total},
    }
    table = table_text(stored)
    head = (f"loop_cpu: SciFact, split seed {args.seed}: {len(first)} training queries -> {counts['pairs']} pairs "
            f"({counts['positives']} positives, {args.negatives} BM25 hard negatives per query), control with "
            f"{counts['flipped']} labels flipped; nDCG@10 on the {len(second)} held-out queries; {total} s")
    out_dir = Path(settings.ARTIFACTS_DIR) / "loop_cpu"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"loop-{tag}-{time.strftime('%Y%m%d-%H%M%S')}"
    (out_dir / f"{stem}.json").write_text(json.dumps(stored, indent=2))
    (out_dir / f"{stem}.md").write_text(f"{head}\n\n```\n{table}\n```\n\neval runs: {runs}\ntimings (s): {stored['seconds']}\n")
    print(head)
    print(table)
    print(f"eval runs {runs}; training jobs {jobs}; timings (s) {stored['seconds']}")
    print(f"stored in {out_dir / stem}.md and .json; the runs are on the leaderboard (column {heldout.name})")
    print(json.dumps(summary))
    return stored


if __name__ == "__main__":
    try:
        main()
    except LoopError as exc:
        print(f"loop_cpu: {exc}", file=sys.stderr)
        raise SystemExit(1)
