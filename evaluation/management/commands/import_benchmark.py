"""manage.py import_benchmark --format beir|trec|bright|followir|litsearch|ir_datasets PATH --name NAME

PATH: a folder (beir, bright, followir in its public layout, litsearch), the TREC topics file (trec, with --qrels
and optional --run, --corpus: jsonl, tsv or TREC SGML <DOC> files, gzipped or a folder of them), an ir_datasets
id (ir_datasets), or with --online a hub repository (followir: jhu-clsp/core17-instructions; bright, litsearch)."""
from django.core.management.base import BaseCommand, CommandError
from evaluation.benchmarks import BenchmarkFormatError
from evaluation.services import EvaluationError, benchmark_import_path


class Command(BaseCommand):
    help = ("Import a benchmark (all-or-nothing). PATH: a folder (beir, bright, followir, litsearch), the topics file "
            "(trec), an ir_datasets id (ir_datasets), or a hub repository with --online (followir).")

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", default="", help="folder, or TREC topics file; omit for --online")
        parser.add_argument("--format", required=True, choices=["beir", "trec", "bright", "followir", "litsearch", "ir_datasets"])
        parser.add_argument("--name", required=True)
        parser.add_argument("--qrels", help="TREC: qrels file")
        parser.add_argument("--run", help="TREC: an optional first-stage run (TREC run file or score.json)")
        parser.add_argument("--run-name", default="", help="TREC: the run's name (default: its file name)")
        parser.add_argument("--corpus", help="TREC: optional documents (jsonl, tsv, or TREC SGML <DOC> files, gzipped or a folder)")
        parser.add_argument("--tasks", help="BRIGHT: comma-separated tasks (default: all 12)")
        parser.add_argument("--online", action="store_true",
                            help="BRIGHT/LitSearch: load from the HF hub; FollowIR: PATH is the hub repository")
        parser.add_argument("--replace", action="store_true", help="replace a benchmark of that name (if it has no runs)")

    def handle(self, *args, **o):
        kw = {}
        if o["format"] == "trec":
            kw["files"] = {"topics": o["path"], "qrels": o["qrels"], "run": o["run"], "corpus": o["corpus"],
                           "run_name": o["run_name"]}
        if o["format"] in ("bright", "followir"):
            kw["online"] = o["online"]
            if o["tasks"]:
                kw["tasks"] = [t.strip() for t in o["tasks"].split(",") if t.strip()]
        if not o["path"] and not o["online"]:
            raise CommandError("PATH is required (or --online for bright/litsearch)")
        if o["format"] == "followir" and o["online"] and not o["path"]:
            raise CommandError("FollowIR --online: PATH is the hub repository, e.g. jhu-clsp/core17-instructions")
        try:
            benches = benchmark_import_path(format=o["format"], path=o["path"] or None, name=o["name"],
                                            replace=o["replace"], **kw)
        except (BenchmarkFormatError, EvaluationError) as exc:
            raise CommandError(f"nothing imported: {exc}") from exc
        for b in benches:
            self.stdout.write(self.style.SUCCESS(
                f"{b.name}: {b.n_queries} queries, {b.n_documents} documents, {b.n_qrels} judgments"))
