"""Evaluation writes: benchmark imports (all-or-nothing), reranker registration, eval runs (create, execute),
the demo benchmark and the published reference figures."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, Iterable

from django.conf import settings
from django.db import transaction

from limrank_app.jobs import JobStatus, job_cancel, job_claim, job_enqueue_on_commit, job_finish, job_progress
from curation import protocol
from curation.protocol import passage_join, query_in_task_prompt, query_with_instruction
from training.models import ModelArtifact

from . import benchmarks as fmt
from .first_stage import BM25_PARAMS, bm25_retrieve
from .metrics import evaluate, p_mrr, run_drop_excluded, run_top_k
from .models import Benchmark, BenchmarkDocument, BenchmarkQuery, EvalQueryResult, EvalRun, Qrel, ReferenceResult, RerankerModel
from .reference_figures import reference_rows
from .rerankers import reranker_for_model, strategy_available, strategy_get

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parent / "data" / "scifact"
DEMO_NAME = "scifact"
FORMATS = ("beir", "trec", "bright", "followir", "litsearch", "ir_datasets")
_BATCH = 2000


class EvaluationError(ValueError):
    """A request the evaluation services refuse, with the reason."""


# A reranker with fewer parameters than this is a test model (the tiny ones the tests build have thousands): its
# runs are smoke runs, kept off the leaderboard unless asked for.
SMOKE_MAX_PARAMETERS = 5_000_000


def eval_run_cost(*, counts: dict, seconds: float, gpu_seconds: float, queries: int, price: dict | None) -> dict:
    """What a run spent, in total and per query: model calls, tokens in and out, seconds, GPU-seconds and dollars
    when the model's config gives a price (`price`: input_per_million, output_per_million, gpu_hour)."""
    cost = {"calls": int(counts.get("calls", 0)), "tokens_in": int(counts.get("tokens_in", 0)),
            "tokens_out": int(counts.get("tokens_out", 0)), "seconds": round(seconds, 3),
            "gpu_seconds": round(gpu_seconds, 3), "queries": int(queries)}
    if price:
        try:
            cost["dollars"] = round(cost["tokens_in"] * float(price.get("input_per_million", 0)) / 1e6
                                    + cost["tokens_out"] * float(price.get("output_per_million", 0)) / 1e6
                                    + gpu_seconds * float(price.get("gpu_hour", 0)) / 3600, 6)
        except (TypeError, ValueError, AttributeError) as exc:
            raise EvaluationError(f"model config 'price' must map input_per_million / output_per_million / "
                                  f"gpu_hour to numbers: {exc}") from exc
    if queries:
        cost["per_query"] = {k: round(cost[k] / queries, 6) for k in
                             ("calls", "tokens_in", "tokens_out", "seconds", "gpu_seconds", "dollars") if k in cost}
    return cost


# ---------------------------------------------------------------- storage paths

def benchmark_dir(benchmark: Benchmark) -> Path:
    return Path(settings.ARTIFACTS_DIR) / "benchmarks" / f"benchmark-{benchmark.pk}"


def benchmark_run_path(benchmark: Benchmark, name: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return benchmark_dir(benchmark) / "runs" / f"{safe}.trec"


def eval_run_dir(run: EvalRun) -> Path:
    return Path(settings.ARTIFACTS_DIR) / "eval_runs" / f"run-{run.pk}"


# ---------------------------------------------------------------- imports

def benchmark_import(*, parsed: fmt.ParsedBenchmark, replace: bool = False) -> Benchmark:
    return benchmark_import_many(parsed_list=[parsed], replace=replace)[0]


def benchmark_import_many(*, parsed_list: list[fmt.ParsedBenchmark], replace: bool = False) -> list[Benchmark]:
    """Write parsed benchmarks in one transaction: all of them or none (BRIGHT's 12 tasks go together)."""
    names = [p.name for p in parsed_list]
    existing = set(Benchmark.objects.filter(name__in=names).values_list("name", flat=True))
    if existing and not replace:
        raise EvaluationError(f"benchmark(s) already exist: {', '.join(sorted(existing))} (use replace)")
    out = []
    with transaction.atomic():
        for parsed in parsed_list:
            if parsed.name in existing:
                old = Benchmark.objects.get(name=parsed.name)
                if old.eval_runs.exists():
                    raise EvaluationError(f"benchmark {parsed.name!r} has eval runs; import under a new name")
                old.delete()
            n_qrels = sum(len(d) for side in parsed.qrels.values() for d in side.values())
            bench = Benchmark.objects.create(
                name=parsed.name, format=parsed.format, group=parsed.group, task=parsed.task,
                primary_metric=parsed.primary_metric, description=parsed.description, source=parsed.source[:500],
                n_queries=len(parsed.queries), n_documents=len(parsed.documents), n_qrels=n_qrels,
            )
            BenchmarkQuery.objects.bulk_create(
                (BenchmarkQuery(benchmark=bench, qid=qid, text=q.text, instruction=q.instruction,
                                changed_instruction=q.changed_instruction, excluded_ids=q.excluded_ids)
                 for qid, q in parsed.queries.items()), batch_size=_BATCH)
            BenchmarkDocument.objects.bulk_create(
                (BenchmarkDocument(benchmark=bench, docid=d, title=t, text=x) for d, (t, x) in parsed.documents.items()),
                batch_size=_BATCH)
            Qrel.objects.bulk_create(
                (Qrel(benchmark=bench, side=side, qid=qid, docid=docid, grade=grade)
                 for side, by_q in parsed.qrels.items() for qid, docs in by_q.items() for docid, grade in docs.items()),
                batch_size=_BATCH)
            for name, run in parsed.runs.items():
                fmt.write_run(run, benchmark_run_path(bench, name), tag=name)
            out.append(bench)
    return out


def benchmark_parse(*, format: str, path: str | Path | None = None, name: str, files: dict | None = None,
                    tasks: Iterable[str] | None = None, online: bool = False) -> list[fmt.ParsedBenchmark]:
    """Parse any supported format. `path` is a folder (beir, bright, followir, litsearch), a hub repository with
    `online` (followir: e.g. jhu-clsp/core17-instructions), or an ir_datasets id; TREC takes `files`
    (topics, qrels, optional run, corpus: jsonl, tsv or TREC SGML documents)."""
    if format == "beir":
        return [fmt.parse_beir(path, name=name)]
    if format == "trec":
        files = files or {}
        if not files.get("topics") or not files.get("qrels"):
            raise EvaluationError("TREC import needs topics and qrels files")
        return [fmt.parse_trec(name=name, topics=files["topics"], qrels=files["qrels"], run=files.get("run"),
                               corpus=files.get("corpus"), run_name=files.get("run_name", ""))]
    if format == "bright":
        tasks = tuple(tasks or fmt.BRIGHT_TASKS)
        if online:
            return fmt.parse_bright_hub(name=name, tasks=tasks)
        return fmt.parse_bright_local(path, name=name, tasks=tasks)
    if format == "followir":
        if online:
            if not path:
                raise EvaluationError("FollowIR --online needs the hub repository (e.g. jhu-clsp/core17-instructions)")
            return [fmt.parse_followir_hub(str(path), name=name)]
        return [fmt.parse_followir(path, name=name)]
    if format == "ir_datasets":
        if not path:
            raise EvaluationError("give the ir_datasets id, e.g. disks45/nocr/trec-robust-2004")
        return [fmt.parse_ir_datasets(str(path), name=name)]
    if format == "litsearch":
        return [fmt.parse_litsearch(path, name=name)]
    raise EvaluationError(f"unknown format {format!r} (one of {', '.join(FORMATS)})")


def benchmark_import_path(*, format: str, path: str | Path | None, name: str, replace: bool = False, **kw) -> list[Benchmark]:
    return benchmark_import_many(parsed_list=benchmark_parse(format=format, path=path, name=name, **kw), replace=replace)


def benchmark_run_attach(*, benchmark: Benchmark, name: str, path: str | Path) -> Path:
    """Attach a first-stage run (TREC or score.json) to a benchmark, validated: known query ids, and known
    document ids when the benchmark has its documents. Stored as a TREC file with exact scores. Attaching
    the same scores again is a no-op; different scores under a name an eval run already used are refused
    (that run's first stage must stay what it was)."""
    name = name.strip()
    if not name or name == "bm25":
        raise EvaluationError("a run needs a name other than 'bm25'")
    run = fmt.read_run(path)
    if not run:
        raise fmt.BenchmarkFormatError("the run is empty", file=path)
    qids = set(benchmark.queries.values_list("qid", flat=True))
    for qid in run:
        if qid not in qids:
            raise fmt.BenchmarkFormatError(f"unknown query id {qid!r}", file=path, field="qid")
    if benchmark.n_documents:
        wanted = {d for docs in run.values() for d in docs}
        known = _existing_docids(benchmark, wanted)
        missing = sorted(wanted - known)
        if missing:
            raise fmt.BenchmarkFormatError(f"unknown document id {missing[0]!r} ({len(missing)} unknown)", file=path, field="docid")
    dest = benchmark_run_path(benchmark, name)
    if dest.exists():
        if fmt.read_run(dest) == run:
            return dest
        if EvalRun.objects.filter(benchmark=benchmark, first_stage=name).exists():
            raise EvaluationError(f"{benchmark.name} already has a run named {name!r} with other scores, used by eval "
                                  f"runs; attach this one under another name")
    return fmt.write_run(run, dest, tag=name)


def _existing_docids(benchmark: Benchmark, docids: set[str]) -> set[str]:
    known: set[str] = set()
    ids = list(docids)
    for i in range(0, len(ids), 500):  # SQLite's bound-parameter limit
        known.update(BenchmarkDocument.objects.filter(benchmark=benchmark, docid__in=ids[i:i + 500]).values_list("docid", flat=True))
    return known


# ---------------------------------------------------------------- models, demo, references

def reranker_model_register(*, name: str, kind: str, path: str = "", base_model: str = "", config: dict | None = None,
                            artifact=None) -> RerankerModel:
    model, _ = RerankerModel.objects.update_or_create(
        name=name, defaults=dict(kind=kind, path=path, base_model=base_model, config=config or {}, artifact=artifact))
    model.full_clean()
    return model


def benchmark_demo_ensure() -> Benchmark:
    """Idempotent: the shipped SciFact as benchmark "scifact", and the "bm25" model."""
    reranker_model_register(name="bm25", kind=RerankerModel.Kind.BM25, config={"note": "first stage only"})
    bench = Benchmark.objects.filter(name=DEMO_NAME).first()
    if bench is None:
        parsed = fmt.parse_beir(DEMO_DIR, name=DEMO_NAME)
        parsed.description = "SciFact (BEIR test split): scientific claims against abstracts. The studio's demo benchmark."
        parsed.source = "allenai/scifact via BEIR: claims CC BY 4.0, abstracts ODC-By 1.0 (evaluation/data/scifact/SOURCES.md)"
        bench = benchmark_import(parsed=parsed)
    return bench


def reranker_model_from_artifact(*, artifact: ModelArtifact) -> RerankerModel:
    """The scorable model of a training artifact, named after it (idempotent: a retried job updates it)."""
    causal = artifact.kind in (ModelArtifact.Kind.LORA_ADAPTER, ModelArtifact.Kind.FULL_MODEL)
    max_length = artifact.hyperparameters.get("max_length")
    if artifact.kind == ModelArtifact.Kind.EMBEDDING:
        kind = RerankerModel.Kind.EMBEDDING
        config = {"backend": "sentence-transformers", "max_length": max_length}
    else:
        kind = RerankerModel.Kind.CAUSAL_LM if causal else RerankerModel.Kind.CROSS_ENCODER
        config = {"backend": "transformers", "adapter": artifact.kind == ModelArtifact.Kind.LORA_ADAPTER,
                  "prompt": "rank1" if causal else "pair", "max_length": max_length,
                  "loader": "training.lora.reranker_load"}
    model, _ = RerankerModel.objects.update_or_create(
        name=artifact.name,
        defaults={"kind": kind, "path": artifact.path, "base_model": artifact.base_model, "artifact": artifact,
                  "config": config},
    )
    return model


def reference_results_ensure() -> int:
    """Idempotent: the published figures of limrank.md, each with its citation and first stage."""
    n = 0
    for row in reference_rows():
        key = {k: row[k] for k in ("system", "benchmark", "metric")}
        values = {k: row.get(k, "") for k in ("value", "first_stage", "citation", "url", "notes")}
        ReferenceResult.objects.update_or_create(**key, defaults=values)
        n += 1
    return n


# ---------------------------------------------------------------- eval runs

def benchmark_first_stages(benchmark: Benchmark) -> list[str]:
    runs = sorted(p.stem for p in (benchmark_dir(benchmark) / "runs").glob("*.trec"))
    return (["bm25"] if benchmark.n_documents else []) + runs


def eval_run_create(*, benchmark: Benchmark, model: RerankerModel, first_stage: str = "bm25", top_k: int = 100,
                    params: dict | None = None, created_by=None, enqueue: bool = True) -> EvalRun:
    """Create an eval run and enqueue it on the gpu queue once the transaction commits."""
    if not 1 <= int(top_k) <= 1000:
        raise EvaluationError("top_k must be between 1 and 1000")
    stages = benchmark_first_stages(benchmark)
    if first_stage not in stages:
        raise EvaluationError(f"first stage {first_stage!r} is not available for {benchmark.name} "
                              f"(available: {', '.join(stages) or 'none: upload a run'})")
    if model.kind != RerankerModel.Kind.BM25 and not benchmark.n_documents:
        raise EvaluationError(f"{benchmark.name} has no documents: a reranker needs their texts")
    eval_task_prompt(benchmark=benchmark, model_kind=model.kind, params=params or {})  # a bad task name: 4xx now
    if model.kind != RerankerModel.Kind.BM25:
        backend = (model.config or {}).get("backend")
        if backend and backend not in strategy_get(model.kind).backends:
            raise EvaluationError(f"model {model.name!r}: backend {backend!r} is not one of "
                                  f"{', '.join(strategy_get(model.kind).backends)} for {model.kind}")
        if not strategy_available(model.kind, backend):
            raise EvaluationError(f"reranker family {strategy_get(model.kind).family!r} is not available in this build")
    eval_run_cost(counts={}, seconds=0.0, gpu_seconds=0.0, queries=0, price=(model.config or {}).get("price"))  # a bad price: 4xx now
    params = dict(params or {})
    if params.get("smoke") or (model.config or {}).get("smoke"):
        params["smoke"] = True  # asked for: kept off the leaderboard unless asked for (?smoke=1)
    else:
        params.pop("smoke", None)
    run = EvalRun.objects.create(benchmark=benchmark, model=model, first_stage=first_stage, top_k=int(top_k),
                                 params=params, created_by=created_by)
    if enqueue:
        job_enqueue_on_commit(EvalRun, pk=run.pk)
    return run


def eval_run_cancel(*, run: EvalRun) -> EvalRun:
    job_cancel(run)
    return run


class _Cancelled(Exception):
    pass


def eval_run_execute(*, run_id: int, on_progress: Callable[[int, int], None] | None = None) -> bool:
    """Claim and execute an eval run; False when another worker holds it or it is finished.
    Reranked queries are checkpointed, so a run resumed after a killed worker skips them."""
    if not job_claim(EvalRun, pk=run_id):
        return False
    run = EvalRun.objects.select_related("benchmark", "model", "model__artifact").get(pk=run_id)
    try:
        _execute(run, on_progress=on_progress)
    except _Cancelled:
        job_finish(run, status=JobStatus.CANCELLED, error="cancelled")
    except Exception as exc:  # noqa: BLE001 - the row carries the error for the UI
        log.exception("eval run %s failed", run_id)
        job_finish(run, status=JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:4000])
    return True


def _queries(bench: Benchmark):
    return list(bench.queries.order_by("id").values("qid", "text", "instruction", "changed_instruction", "excluded_ids"))


def _qrels(bench: Benchmark, side: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for qid, docid, grade in Qrel.objects.filter(benchmark=bench, side=side).values_list("qid", "docid", "grade").iterator():
        out.setdefault(qid, {})[docid] = grade
    return out


def _doc_texts(bench: Benchmark, docids: set[str] | None = None) -> dict[str, str]:
    qs = BenchmarkDocument.objects.filter(benchmark=bench)
    out = {}
    if docids is None:
        for docid, title, text in qs.values_list("docid", "title", "text").iterator(chunk_size=5000):
            out[docid] = passage_join(title, text)
        return out
    ids = list(docids)
    for i in range(0, len(ids), 500):
        for docid, title, text in qs.filter(docid__in=ids[i:i + 500]).values_list("docid", "title", "text"):
            out[docid] = passage_join(title, text)
    return out


def first_stage_run(*, benchmark: Benchmark, first_stage: str, top_k: int, queries: list[dict]) -> dict[str, dict[str, float]]:
    """The candidates: BM25 top-k (cached per benchmark) or an uploaded run cut to its top k; excluded ids dropped."""
    excluded = {q["qid"]: q["excluded_ids"] for q in queries if q["excluded_ids"]}
    if first_stage == "bm25":
        def documents():
            texts = _doc_texts(benchmark)
            return list(texts), list(texts.values())

        return bm25_retrieve(
            cache_dir=Path(settings.ARTIFACTS_DIR) / "bm25" / f"benchmark-{benchmark.pk}", documents=documents,
            queries={q["qid"]: q["text"] for q in queries}, k=top_k, excluded=excluded,
            corpus_key=f"{benchmark.pk}:{benchmark.n_documents}:{benchmark.created_at.isoformat()}",
        )
    path = benchmark_run_path(benchmark, first_stage)
    if not path.exists():
        raise EvaluationError(f"uploaded run {first_stage!r} not found at {path}")
    run = run_drop_excluded(fmt.read_run_trec(path), excluded)
    wanted = {q["qid"] for q in queries}
    return run_top_k({qid: docs for qid, docs in run.items() if qid in wanted}, top_k)


def _query_for(q: dict, *, side: str, followir: bool, task_prompt: str | None, use_instruction: bool) -> str:
    """The query as the reranker sees it: instruction appended (FollowIR: per side), then the task's prompt."""
    instruction = ""
    if followir:
        instruction = q["instruction"] if side == "og" else q["changed_instruction"]
    elif use_instruction:
        instruction = q["instruction"]
    return query_in_task_prompt(query_with_instruction(q["text"], instruction), task_prompt)


def eval_task_prompt(*, benchmark: Benchmark, model_kind: str, params: dict) -> tuple[str | None, dict]:
    """The reference's per-task prompt for a causal-LM run (None for other rerankers or with `no_prompt`), and
    what was chosen, for the run's params. `params["task"]` / `params["subtask"]` name the reference task when
    the benchmark's name does not (e.g. a BEIR folder imported under another name)."""
    if model_kind != RerankerModel.Kind.CAUSAL_LM:
        return None, {}
    if params.get("task"):
        try:
            task = protocol.task_normalize(str(params["task"]), params.get("subtask") or None)
        except protocol.UnknownTaskError as exc:
            raise EvaluationError(str(exc)) from exc
    else:
        task = protocol.benchmark_task(name=benchmark.name, format=benchmark.format, task=benchmark.task)
    if params.get("no_prompt") or task is None:
        return None, {"reference_task": list(task) if task else None, "task_prompt": False}
    prompt = protocol.task_prompt(*task)
    return prompt, {"reference_task": list(task), "task_prompt": prompt is not None}


def _chunks(pending: list[tuple[str, dict, list[str]]], size: int | None) -> Iterable[list[tuple[str, dict, list[str]]]]:
    """Whole queries per chunk (the checkpoint stores queries), about `size` pairs each (None: one chunk)."""
    chunk, n = [], 0
    for item in pending:
        chunk.append(item)
        n += len(item[2])
        if size is not None and n >= size:
            yield chunk
            chunk, n = [], 0
    if chunk:
        yield chunk


def _execute(run: EvalRun, *, on_progress=None) -> None:
    bench, model = run.benchmark, run.model
    followir = bench.format == Benchmark.Format.FOLLOWIR
    sides = ["og", "changed"] if followir else ["og"]
    queries = _queries(bench)
    started = time.perf_counter()
    candidates = first_stage_run(benchmark=bench, first_stage=run.first_stage, top_k=run.top_k, queries=queries)
    first_stage_seconds = time.perf_counter() - started
    total = len(queries) * len(sides)
    runs: dict[str, dict[str, dict[str, float]]] = {side: {} for side in sides}
    params = dict(run.params)
    params.update(first_stage_seconds=round(first_stage_seconds, 3), n_queries=len(queries))
    if run.first_stage == "bm25":
        params["bm25"] = BM25_PARAMS

    if model.kind == RerankerModel.Kind.BM25:
        # No reranking: the first stage is the system (both FollowIR sides rank the same candidates).
        for side in sides:
            runs[side] = {q["qid"]: candidates.get(q["qid"], {}) for q in queries}
        job_progress(run, done=total, total=total)
        if on_progress:
            on_progress(total, total)
        cost = eval_run_cost(counts={}, seconds=first_stage_seconds, gpu_seconds=0.0, queries=total, price=None)
    else:
        workdir = eval_run_dir(run)
        workdir.mkdir(parents=True, exist_ok=True)
        checkpoint = workdir / "partial.jsonl"
        if checkpoint.exists():  # resumed after a lost worker: keep what was scored
            for line in checkpoint.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by the kill
                runs[row["side"]][row["qid"]] = row["scores"]
        done = sum(len(v) for v in runs.values())
        job_progress(run, done=done, total=total)
        if on_progress:
            on_progress(done, total)
        task_prompt, chosen = eval_task_prompt(benchmark=bench, model_kind=model.kind, params=params)
        params.update(chosen)
        use_instruction = bool(params.get("use_instruction"))
        needed = {d for docs in candidates.values() for d in docs}
        texts = _doc_texts(bench, needed)
        pending = [(side, q, list(candidates.get(q["qid"], {}))) for side in sides for q in queries
                   if q["qid"] not in runs[side]]
        reranker = reranker_for_model(model)
        n_parameters = reranker.n_parameters
        if n_parameters is not None:
            params["n_parameters"] = n_parameters
            if n_parameters < SMOKE_MAX_PARAMETERS:
                params["smoke"] = True
        done_before = done
        feed = strategy_get(model.kind).feed
        pointwise = feed == "pairs"
        # Pairs per backend call (the reranker's own choice unless the run's params set one): progress and the
        # checkpoint advance per call; a listwise reranker ranks one query's list per call.
        size = params.get("chunk_pairs") or reranker.pairs_per_call
        chunk_size = (int(size) if size else None) if pointwise else 1
        n_pairs, rerank_started = 0, time.perf_counter()
        try:
            with open(checkpoint, "a") as ckpt:
                for chunk in _chunks(pending, chunk_size):
                    queries_of = [_query_for(q, side=side, followir=followir, task_prompt=task_prompt,
                                             use_instruction=use_instruction) for side, q, _ in chunk]
                    if pointwise:
                        pairs = [(qt, texts.get(d, "")) for qt, (_, _, docids) in zip(queries_of, chunk) for d in docids]
                        flat = reranker.score_pairs(pairs) if pairs else []
                    else:  # listwise, setwise, ICR: one query's list at a time
                        flat = []
                        for qt, (_, q, docids) in zip(queries_of, chunk):
                            if not docids:
                                continue
                            passages = [texts.get(d, "") for d in docids]
                            if feed == "list+scores":  # InsertRank: the first stage's scores go in the prompt
                                first = candidates.get(q["qid"], {})
                                flat.extend(reranker.score(qt, passages, first_stage_scores=[first[d] for d in docids]))
                            else:
                                flat.extend(reranker.score(qt, passages))
                    at = 0
                    for side, q, docids in chunk:
                        runs[side][q["qid"]] = dict(zip(docids, flat[at:at + len(docids)]))
                        at += len(docids)
                        ckpt.write(json.dumps({"side": side, "qid": q["qid"], "scores": runs[side][q["qid"]]}) + "\n")
                    ckpt.flush()
                    n_pairs += at
                    done += len(chunk)
                    if on_progress:
                        on_progress(done, total)
                    if not job_progress(run, done=done, total=total):
                        raise _Cancelled()
        finally:
            reranker.close()
        elapsed = time.perf_counter() - rerank_started
        params.update(rerank_seconds=round(elapsed, 3), pairs_scored=n_pairs,
                      pairs_per_second=round(n_pairs / elapsed, 2) if elapsed and n_pairs else None)
        # The queries this attempt scored (a resumed run's earlier ones were paid for by the lost attempt).
        cost = eval_run_cost(counts=reranker.cost.as_dict(), seconds=elapsed + first_stage_seconds,
                             gpu_seconds=elapsed if reranker.on_gpu else 0.0, queries=done - done_before,
                             price=(model.config or {}).get("price"))

    excluded = {q["qid"]: q["excluded_ids"] for q in queries if q["excluded_ids"]}
    og_qrels = _qrels(bench, "og")
    per_query, aggregate = evaluate(og_qrels, runs["og"], excluded=excluded)
    if followir:
        changed_qrels = _qrels(bench, "changed")
        _, changed_agg = evaluate(changed_qrels, runs["changed"], excluded=excluded)
        aggregate.update({f"changed_{k}": v for k, v in changed_agg.items()})
        pq, mean = p_mrr(runs["og"], runs["changed"], og_qrels, changed_qrels)
        aggregate["p_mrr"] = mean
        for qid, value in pq.items():
            per_query.setdefault(qid, {})["p_mrr"] = value
    aggregate["n_queries_scored"] = len(per_query)
    params["cost"] = cost
    for key, value in cost.get("per_query", {}).items():
        aggregate[f"cost_{key}_per_query"] = value

    workdir = eval_run_dir(run)
    workdir.mkdir(parents=True, exist_ok=True)
    tag = f"limrank-{model.name}-{run.first_stage}"
    run_path = fmt.write_run(runs["og"], workdir / "run.trec", tag=tag)
    if followir:
        fmt.write_run(runs["changed"], workdir / "run.changed.trec", tag=tag)
    with transaction.atomic():
        EvalQueryResult.objects.filter(run=run).delete()
        EvalQueryResult.objects.bulk_create(
            (EvalQueryResult(run=run, qid=qid, metrics=m) for qid, m in per_query.items()), batch_size=_BATCH)
        job_finish(run, metrics=aggregate, run_file=str(run_path), params=params, progress_done=total, progress_total=total)
    (workdir / "partial.jsonl").unlink(missing_ok=True)
