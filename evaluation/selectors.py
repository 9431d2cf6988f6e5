"""Evaluation reads: the leaderboard (measured here + reported), run details, per-query results."""
from __future__ import annotations

from pathlib import Path
from statistics import fmean

from django.db.models import QuerySet

from limrank_app.jobs import JobStatus

from .benchmarks import BRIGHT_TASKS, read_run_trec
from .metrics import metric_label
from .models import Benchmark, BenchmarkDocument, BenchmarkQuery, EvalRun, ReferenceResult, RerankerModel
from .plots import leaderboard_bar_svg

# Reported benchmarks with no local data still get their column (headline metric as published).
_REPORTED_ONLY = {"FollowIR": "p_mrr", "LitSearch": "recall_5", "GPQA": "accuracy"}


def eval_run_file(*, run: EvalRun, side: str = "og") -> dict[str, dict[str, float]]:
    """The run an eval run wrote (`run[qid][docid] = score`); `side="changed"`: FollowIR's changed instruction.
    FileNotFoundError when the run has no file (yet)."""
    if not run.run_file:
        raise FileNotFoundError(f"eval run {run.pk} has no run file yet")
    path = Path(run.run_file)
    if side == "changed":
        path = path.with_name("run.changed.trec")
    if not path.exists():
        raise FileNotFoundError(f"eval run {run.pk}: run file missing ({path.name})")
    return read_run_trec(path)


def eval_run_list(*, benchmark: Benchmark | None = None) -> QuerySet[EvalRun]:
    qs = EvalRun.objects.select_related("benchmark", "model").order_by("-id")
    return qs.filter(benchmark=benchmark) if benchmark else qs


def eval_run_query_rows(*, run: EvalRun, metric: str | None = None, limit: int = 1000) -> list[dict]:
    """Per-query metrics with the query text, worst first on the benchmark's primary metric."""
    metric = metric or run.benchmark.primary_metric
    texts = dict(BenchmarkQuery.objects.filter(benchmark=run.benchmark).values_list("qid", "text"))
    rows = [{"qid": r.qid, "text": texts.get(r.qid, ""), "metrics": r.metrics, "value": r.metrics.get(metric)}
            for r in run.query_results.all()]
    rows.sort(key=lambda r: (r["value"] is None, r["value"] if r["value"] is not None else 0, r["qid"]))
    return rows[:limit]


def _columns(benchmarks: list[Benchmark], references: list[ReferenceResult]) -> list[dict]:
    """Columns grouped: each BRIGHT-like group gets its tasks then its average; others one column each."""
    cols: list[dict] = []
    seen: set[str] = set()
    by_group: dict[str, list[Benchmark]] = {}
    for b in benchmarks:
        if b.group:
            by_group.setdefault(b.group, []).append(b)
    ref_groups = {r.benchmark.split("/")[0] for r in references if "/" in r.benchmark}
    # Benchmarks measured here first (SciFact, uploads), then the task groups (BRIGHT), then reported-only columns.
    for b in benchmarks:
        if not b.group:
            cols.append({"key": b.name, "label": b.name, "group": b.name, "benchmark": b, "metric": b.primary_metric, "is_avg": False})
            seen.add(b.name)
    for group in sorted(set(by_group) | ref_groups):
        members = {b.task or b.name.split("/", 1)[-1]: b for b in by_group.get(group, [])}
        tasks = [t for t in BRIGHT_TASKS if t in members or any(r.benchmark == f"{group}/{t}" for r in references)]
        tasks += sorted(t for t in members if t not in tasks)
        for t in tasks:
            b = members.get(t)
            cols.append({"key": f"{group}/{t}", "label": t.replace("_", " "), "group": group, "benchmark": b,
                         "metric": b.primary_metric if b else "ndcg_cut_10", "is_avg": False})
            seen.add(f"{group}/{t}")
        cols.append({"key": group, "label": f"{group} avg", "group": group, "benchmark": None, "metric": "ndcg_cut_10",
                     "is_avg": True, "tasks": [f"{group}/{t}" for t in tasks]})
        seen.add(group)
    for r in references:
        if r.benchmark not in seen:
            cols.append({"key": r.benchmark, "label": r.benchmark, "group": r.benchmark, "benchmark": None,
                         "metric": _REPORTED_ONLY.get(r.benchmark, r.metric), "is_avg": False})
            seen.add(r.benchmark)
    for c in cols:
        c["metric_label"] = metric_label(c["metric"])
    return cols


def leaderboard(*, sort: str = "", descending: bool = True, include_smoke: bool = False) -> dict:
    """Models x benchmarks. Measured cells (percent) link to their eval run; reported rows carry their citation.
    The latest succeeded run per (model, first stage, depth, benchmark) fills a cell. Smoke runs (tiny test models,
    or runs marked `smoke`) are left out unless `include_smoke`."""
    benchmarks = list(Benchmark.objects.order_by("group", "name"))
    references = list(ReferenceResult.objects.order_by("system", "benchmark"))
    columns = _columns(benchmarks, references)
    col_by_bench = {c["benchmark"].pk: c for c in columns if c.get("benchmark")}
    rows: dict[tuple, dict] = {}
    runs = EvalRun.objects.filter(status=JobStatus.SUCCEEDED).select_related("model", "benchmark").order_by("id")
    for run in runs:
        col = col_by_bench.get(run.benchmark_id)
        if col is None or (run.params.get("smoke") and not include_smoke):
            continue
        value = run.metrics.get(col["metric"])
        if value is None:
            continue
        key = ("measured", run.model.name, run.first_stage, run.top_k)
        if run.model.kind == RerankerModel.Kind.BM25:
            label = "BM25" if run.first_stage == "bm25" else f"run: {run.first_stage}"
            stage = "—" if run.first_stage == "bm25" else "uploaded run"
        else:
            label = run.model.name
            stage = f"{'BM25' if run.first_stage == 'bm25' else run.first_stage} top {run.top_k}"
        row = rows.setdefault(key, {"kind": "measured", "label": label, "first_stage": stage, "cells": {},
                                    "model_kind": run.model.get_kind_display(), "citation": "", "url": "",
                                    "smoke": False, "runs": {}})
        row["cells"][col["key"]] = {"value": 100 * value, "run_id": run.pk}
        row["runs"][run.benchmark_id] = run  # the latest per benchmark (runs come in id order)
        row["smoke"] = row["smoke"] or bool(run.params.get("smoke"))
    for ref in references:
        key = ("reported", ref.system)
        row = rows.setdefault(key, {"kind": "reported", "label": ref.system, "first_stage": ref.first_stage,
                                    "cells": {}, "citation": ref.citation, "url": ref.url, "model_kind": ""})
        row["cells"][ref.benchmark] = {"value": ref.value, "run_id": None, "notes": ref.notes}
    # Group averages for measured rows that have every task of the group.
    for row in rows.values():
        if row["kind"] != "measured":
            continue
        for col in columns:
            if col["is_avg"]:
                values = [row["cells"][t]["value"] for t in col["tasks"] if t in row["cells"]]
                if values and len(values) == len(col["tasks"]):
                    row["cells"][col["key"]] = {"value": fmean(values), "run_id": None, "notes": f"mean of {len(values)} tasks"}
    ordered = list(rows.values())
    if sort and any(c["key"] == sort for c in columns):
        def by_cell(r):
            cell = r["cells"].get(sort)
            if cell is None:
                return (1, 0.0)  # rows without the column go last either way
            return (0, -cell["value"] if descending else cell["value"])

        ordered.sort(key=by_cell)
    elif sort == "model":
        ordered.sort(key=lambda r: r["label"].lower(), reverse=not descending)
    else:
        ordered.sort(key=lambda r: (r["kind"] != "measured", r["label"].lower()))
    for row in ordered:
        row["cell_list"] = [row["cells"].get(c["key"]) for c in columns]
    return {"columns": columns, "rows": ordered, "sort": sort, "descending": descending}


def leaderboard_plots(board: dict) -> list[dict]:
    """One plot per benchmark (per group's headline column): measured vs reported bars."""
    plots = []
    headline = [c for c in board["columns"] if c["is_avg"] or (c["group"] == c["key"])]
    for col in headline:
        entries = [(r["label"], r["cells"][col["key"]]["value"], r["kind"]) for r in board["rows"] if col["key"] in r["cells"]]
        if entries:
            plots.append({"key": col["key"], "title": f"{col['label']} · {col['metric_label']}",
                          "svg": leaderboard_bar_svg(title=f"{col['label']} ({col['metric_label']})", entries=entries)})
    return plots


COST_AXES = {
    "seconds": ("seconds", "seconds per query"),
    "tokens": ("tokens", "tokens (in + out) per query"),
    "gpu_seconds": ("gpu_seconds", "GPU-seconds per query"),
    "dollars": ("dollars", "dollars per query"),
}


def leaderboard_cost_points(board: dict, *, axis: str = "seconds") -> list[dict]:
    """One point per measured row: nDCG@10 (mean over the row's benchmarks whose run has it) against the row's cost
    per query (its runs' totals over their queries). Rows whose runs recorded no cost, or none of this axis, are
    left out."""
    field = COST_AXES[axis][0]
    points = []
    for row in board["rows"]:
        if row["kind"] != "measured":
            continue
        ndcg, total, queries = [], 0.0, 0
        for run in row["runs"].values():
            cost = run.params.get("cost") or {}
            value = cost.get("tokens_in", 0) + cost.get("tokens_out", 0) if field == "tokens" else cost.get(field)
            if run.metrics.get("ndcg_cut_10") is None or value is None or not cost.get("queries"):
                continue
            ndcg.append(run.metrics["ndcg_cut_10"])
            total += float(value)
            queries += int(cost["queries"])
        if ndcg and queries:
            points.append({"label": row["label"], "ndcg_10": 100 * fmean(ndcg), "cost": total / queries,
                           "smoke": row["smoke"], "runs": len(ndcg), "model_kind": row["model_kind"]})
    return sorted(points, key=lambda p: p["cost"])


def benchmark_texts() -> dict:
    """Every loaded benchmark's query and document texts, read lazily (a generator per benchmark, in chunks): the
    texts curation's contamination diagnostic checks a dataset version against."""
    def texts(benchmark_id: int):
        for text, instruction in (BenchmarkQuery.objects.filter(benchmark_id=benchmark_id)
                                  .values_list("text", "instruction").iterator(chunk_size=2000)):
            yield text
            if instruction:
                yield instruction
        for title, text in (BenchmarkDocument.objects.filter(benchmark_id=benchmark_id)
                            .values_list("title", "text").iterator(chunk_size=2000)):
            yield f"{title}\n{text}" if title else text

    return {name: texts(pk) for pk, name in Benchmark.objects.order_by("name").values_list("pk", "name")}
