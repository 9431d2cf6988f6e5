"""Evaluation pages: leaderboard, benchmarks, eval runs (reviewers read; admins import and launch)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from limrank_app.jobs import job_resume
from limrank_app.roles import admin_required, reviewer_required

from . import selectors, services
from .benchmarks import BenchmarkFormatError
from .forms import BenchmarkImportForm, EvalRunForm
from .metrics import metric_label, run_format, run_format_score_json
from .models import Benchmark, EvalRun
from .plots import cost_scatter_svg


@reviewer_required
def leaderboard(request):
    sort = request.GET.get("sort", "")
    descending = request.GET.get("dir", "desc") != "asc"
    smoke = request.GET.get("smoke") == "1"
    board = selectors.leaderboard(sort=sort, descending=descending, include_smoke=smoke)
    return render(request, "evaluation/leaderboard.html",
                  {"board": board, "plots": selectors.leaderboard_plots(board), "smoke": smoke})


@reviewer_required
def leaderboard_cost(request):
    """nDCG@10 against cost per query, one point per measured row (?cost=seconds|tokens|gpu_seconds|dollars)."""
    axis = request.GET.get("cost", "seconds")
    if axis not in selectors.COST_AXES:
        return render(request, "evaluation/leaderboard_cost.html",
                      {"error": f"unknown cost axis {axis!r}: one of {', '.join(selectors.COST_AXES)}",
                       "axes": selectors.COST_AXES, "axis": "seconds"}, status=400)
    smoke = request.GET.get("smoke") == "1"
    board = selectors.leaderboard(include_smoke=smoke)
    points = selectors.leaderboard_cost_points(board, axis=axis)
    xlabel = selectors.COST_AXES[axis][1]
    svg = cost_scatter_svg(title=f"Quality against cost ({xlabel})", xlabel=xlabel,
                           points=[(p["label"], p["cost"], p["ndcg_10"]) for p in points]) if points else ""
    return render(request, "evaluation/leaderboard_cost.html",
                  {"points": points, "svg": svg, "axis": axis, "axes": selectors.COST_AXES, "smoke": smoke})


@reviewer_required
def benchmark_list(request):
    benches = Benchmark.objects.order_by("group", "name")
    return render(request, "evaluation/benchmark_list.html",
                  {"benchmarks": [(b, services.benchmark_first_stages(b)) for b in benches]})


def _save_upload(upload, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as fh:
        for chunk in upload.chunks():
            fh.write(chunk)
    return dest


def _gz(upload, base: str) -> str:
    return base + (".gz" if upload.name.endswith(".gz") else "")


@admin_required
def benchmark_import(request):
    form = BenchmarkImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        d, f = form.cleaned_data, request.FILES
        tmp = Path(tempfile.mkdtemp(prefix="limrank-import-"))
        try:
            if d["format"] == "beir":
                _save_upload(f["corpus"], tmp / _gz(f["corpus"], "corpus.jsonl"))
                _save_upload(f["queries"], tmp / _gz(f["queries"], "queries.jsonl"))
                _save_upload(f["qrels"], tmp / "qrels" / "test.tsv")
                benches = services.benchmark_import_path(format="beir", path=tmp, name=d["name"])
            elif d["format"] == "trec":
                files = {"topics": _save_upload(f["queries"], tmp / _gz(f["queries"], "topics")),
                         "qrels": _save_upload(f["qrels"], tmp / "qrels")}
                if f.get("run"):
                    files["run"] = _save_upload(f["run"], tmp / Path(f["run"].name).name)
                if f.get("corpus"):
                    files["corpus"] = _save_upload(f["corpus"], tmp / Path(f["corpus"].name).name)
                benches = services.benchmark_import_path(format="trec", path=None, name=d["name"], files=files)
            elif d["format"] == "bright":
                task = d["task"].replace("_", "-")
                _save_upload(f["queries"], tmp / "topics" / _gz(f["queries"], f"topics.bright-{task}.tsv"))
                _save_upload(f["qrels"], tmp / "qrels" / f"qrels.bright-{task}.txt")
                if f.get("excluded"):
                    _save_upload(f["excluded"], tmp / "qrels" / f"exclude.bright-{task}.txt")
                if f.get("corpus"):
                    _save_upload(f["corpus"], tmp / "documents" / _gz(f["corpus"], f"{d['task']}.jsonl"))
                benches = services.benchmark_import_path(format="bright", path=tmp, name=d["name"], tasks=[d["task"]])
            else:
                _save_upload(f["queries"], tmp / "queries.jsonl")
                _save_upload(f["qrels"], tmp / "qrels" / "og.tsv")
                _save_upload(f["changed_qrels"], tmp / "qrels" / "changed.tsv")
                if f.get("corpus"):
                    _save_upload(f["corpus"], tmp / _gz(f["corpus"], "corpus.jsonl"))
                if f.get("run"):  # FollowIR's top_ranked.jsonl (qid, pid), a TREC run or a score.json
                    _save_upload(f["run"], tmp / ("top_ranked.jsonl" if f["run"].name.endswith(".jsonl") else "top_ranked.trec"))
                benches = services.benchmark_import_path(format="followir", path=tmp, name=d["name"])
        except (BenchmarkFormatError, services.EvaluationError) as exc:
            # Uploaded files are saved under generic names: say which upload field the error is about.
            form.add_error(None, f"Nothing was imported. {exc}")
        else:
            messages.success(request, "Imported " + ", ".join(f"{b.name} ({b.n_queries} queries)" for b in benches))
            return redirect("evaluation:benchmark_list")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return render(request, "evaluation/benchmark_import.html", {"form": form})


@reviewer_required
def eval_run_list(request):
    return render(request, "evaluation/run_list.html", {"runs": selectors.eval_run_list()[:200]})


@admin_required
def eval_run_new(request):
    form = EvalRunForm(request.POST or None, initial={"benchmark": request.GET.get("benchmark")})
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            run = services.eval_run_create(benchmark=d["benchmark"], model=d["model"], first_stage=d["first_stage"].strip(),
                                           top_k=d["top_k"], created_by=request.user)
        except services.EvaluationError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Eval run {run.pk} queued on the gpu queue.")
            return redirect("evaluation:run_detail", pk=run.pk)
    return render(request, "evaluation/run_new.html", {"form": form})


@reviewer_required
@never_cache
def eval_run_detail(request, pk: int):
    run = get_object_or_404(EvalRun.objects.select_related("benchmark", "model"), pk=pk)
    if request.headers.get("HX-Request"):
        response = render(request, "evaluation/partials/run_status.html", {"run": run})
        if run.is_finished:
            response["HX-Refresh"] = "true"  # the page reloads once, with metrics and per-query rows
        return response
    metrics = [(k, metric_label(k), v) for k, v in sorted(run.metrics.items()) if isinstance(v, (int, float))]
    rows = selectors.eval_run_query_rows(run=run) if run.status == "succeeded" else []
    shown = ["ndcg_cut_10", "recall_5", "recall_100", "recip_rank", "map", "p_mrr"]
    columns = [(k, metric_label(k)) for k in shown if rows and any(k in r["metrics"] for r in rows)]
    for r in rows:
        r["cells"] = [r["metrics"].get(k) for k, _ in columns]
    return render(request, "evaluation/run_detail.html", {"run": run, "metrics": metrics, "rows": rows, "columns": columns})


def run_file_response(scores: dict, *, filename: str, as_json: bool, tag: str):
    """A download of a run: score.json or a TREC file (one rendering for the page and the API)."""
    if as_json:
        body, ctype, ext = run_format_score_json(scores), "application/json", "json"
    else:
        body, ctype, ext = "".join(run_format(scores, tag=tag)), "text/plain", "trec"
    response = HttpResponse(body, content_type=ctype)
    response["Content-Disposition"] = f'attachment; filename="{filename}.{ext}"'
    return response


@reviewer_required
def eval_run_download(request, pk: int):
    """The run file; `?side=changed` for FollowIR's changed instruction, `?file_format=json` for score.json."""
    run = get_object_or_404(EvalRun.objects.select_related("model"), pk=pk)
    side = "changed" if request.GET.get("side") == "changed" else "og"
    try:
        scores = selectors.eval_run_file(run=run, side=side)
    except FileNotFoundError as exc:
        raise Http404(str(exc)) from None
    return run_file_response(scores, filename=f"evalrun-{run.pk}{'-changed' if side == 'changed' else ''}",
                             as_json=request.GET.get("file_format") == "json",
                             tag=f"limrank-{run.model.name}-{run.first_stage}")


@admin_required
@require_POST
def eval_run_cancel(request, pk: int):
    run = get_object_or_404(EvalRun, pk=pk)
    services.eval_run_cancel(run=run)
    messages.success(request, f"Cancel requested for eval run {run.pk}.")
    return redirect("evaluation:run_detail", pk=run.pk)


@admin_required
@require_POST
def eval_run_resume(request, pk: int):
    """Resume or retry a failed, cancelled or stuck eval run."""
    run = get_object_or_404(EvalRun, pk=pk)
    if job_resume(run):
        messages.success(request, f"Eval run {run.pk} queued again.")
    else:
        messages.info(request, f"Eval run {run.pk} is {run.get_status_display().lower()}: nothing to resume.")
    return redirect("evaluation:run_detail", pk=run.pk)
