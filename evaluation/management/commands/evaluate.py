"""manage.py evaluate --benchmark NAME --model bm25|MODEL_NAME [--first-stage bm25|RUN_NAME|FILE] [--top-k 100]
[--run-out FILE] [--foreground]

`--first-stage FILE` takes a TREC run or a `score.json` ({qid: {docid: score}}, as Rank1 and LimRank publish
their first stages): it is attached to the benchmark (named after the file) and its top k are reranked.
`--run-out FILE` writes the result as score.json when FILE ends in `.json`, as a TREC run otherwise."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from evaluation.benchmarks import BenchmarkFormatError, run_name_from_path, write_run
from evaluation.models import Benchmark, EvalRun, RerankerModel
from evaluation.selectors import eval_run_file
from evaluation.services import (
    EvaluationError, benchmark_demo_ensure, benchmark_run_attach, eval_run_create, eval_run_execute,
)


class Command(BaseCommand):
    help = "Score a model on a benchmark: enqueue on the gpu queue, or --foreground to run here with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("--benchmark", required=True, help="benchmark name (BRIGHT: NAME/task, or NAME for all tasks)")
        parser.add_argument("--model", required=True, help="bm25, or a registered reranker model's name")
        parser.add_argument("--first-stage", default="bm25",
                            help="bm25, the name of an uploaded run, or a run file (TREC or score.json) to attach and rerank")
        parser.add_argument("--first-stage-name", default="",
                            help="name for a --first-stage FILE (default: the file's stem, or its folder for score.json)")
        parser.add_argument("--top-k", type=int, default=100, help="rerank this many candidates per query (default 100)")
        parser.add_argument("--run-out", help="write the run here (foreground only): score.json if it ends in .json, "
                                              "TREC otherwise; FollowIR's changed-instruction run goes beside it")
        parser.add_argument("--foreground", action="store_true", help="run in this process instead of a worker")
        parser.add_argument("--no-prompt", action="store_true",
                            help="causal LM: leave out the reference's per-task prompt (see manage.py rerank_prompt)")
        parser.add_argument("--task", help="causal LM: the reference task whose prompt to use, when the benchmark's "
                                           "name is not one (e.g. SciFact, BrightRetrieval)")
        parser.add_argument("--subtask", help="with --task BrightRetrieval: biology, leetcode, ...")
        parser.add_argument("--smoke", action="store_true",
                            help="mark the run as a smoke run (kept off the leaderboard unless asked for); runs of "
                                 "tiny test models are marked without it")

    def handle(self, *args, **o):
        if o["model"] == "bm25":
            benchmark_demo_ensure() if o["benchmark"] == "scifact" else None
            RerankerModel.objects.get_or_create(name="bm25", defaults={"kind": RerankerModel.Kind.BM25})
        model = RerankerModel.objects.filter(name=o["model"]).first()
        if model is None:
            raise CommandError(f"no model named {o['model']!r}; registered: "
                               f"{', '.join(RerankerModel.objects.values_list('name', flat=True)) or 'none'}")
        benches = list(Benchmark.objects.filter(name=o["benchmark"])) or list(
            Benchmark.objects.filter(group=o["benchmark"]).order_by("name"))
        if not benches:
            raise CommandError(f"no benchmark named {o['benchmark']!r}")
        if o["run_out"] and (len(benches) > 1 or not o["foreground"]):
            raise CommandError("--run-out needs --foreground and a single benchmark")
        first_stage = o["first_stage"]
        stage_file = Path(first_stage)
        if first_stage != "bm25" and (stage_file.is_file() or stage_file.suffix.lower() in (".json", ".trec", ".txt")):
            if not stage_file.is_file():
                raise CommandError(f"--first-stage {first_stage}: no such file")
            if len(benches) > 1:
                raise CommandError("--first-stage FILE needs a single benchmark (a run file belongs to one task)")
            first_stage = o["first_stage_name"] or run_name_from_path(stage_file)
            try:
                benchmark_run_attach(benchmark=benches[0], name=first_stage, path=stage_file)
            except (BenchmarkFormatError, EvaluationError) as exc:
                raise CommandError(f"--first-stage: {exc}") from exc
            self.stdout.write(f"first stage {first_stage!r} attached to {benches[0].name} from {stage_file}")
        for bench in benches:
            try:
                params = {k: o[k] for k in ("no_prompt", "task", "subtask", "smoke") if o[k]}
                run = eval_run_create(benchmark=bench, model=model, first_stage=first_stage, top_k=o["top_k"],
                                      params=params, enqueue=not o["foreground"])
            except EvaluationError as exc:
                raise CommandError(str(exc)) from exc
            if not o["foreground"]:
                self.stdout.write(f"eval run {run.pk} queued on the gpu queue ({model.name} on {bench.name}); "
                                  f"follow it at /evaluation/runs/{run.pk}/")
                continue
            bar = tqdm(desc=f"{model.name} on {bench.name}", unit="query")

            def on_progress(done, total, bar=bar):
                bar.total = total
                bar.n = done
                bar.refresh()

            eval_run_execute(run_id=run.pk, on_progress=on_progress)
            bar.close()
            run = EvalRun.objects.get(pk=run.pk)
            if run.status != "succeeded":
                raise CommandError(f"eval run {run.pk} {run.status}: {run.error}")
            shown = {k: round(v, 4) for k, v in run.metrics.items() if isinstance(v, float)}
            self.stdout.write(self.style.SUCCESS(f"eval run {run.pk}: {bench.name} · {model.name}: {shown}"))
            if run.params.get("pairs_per_second"):
                self.stdout.write(f"  reranked {run.params['pairs_scored']} pairs at {run.params['pairs_per_second']} pairs/s")
            if o["run_out"]:
                out = Path(o["run_out"])
                tag = f"limrank-{model.name}-{run.first_stage}"
                write_run(eval_run_file(run=run), out, tag=tag)
                self.stdout.write(f"  run file: {out}")
                if bench.format == Benchmark.Format.FOLLOWIR:
                    changed = out.with_name(f"{out.stem}.changed{out.suffix}")
                    write_run(eval_run_file(run=run, side="changed"), changed, tag=tag)
                    self.stdout.write(f"  changed-instruction run file: {changed}")
