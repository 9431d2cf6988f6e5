"""manage.py import_examples FILE --origin rank1|imported [--dataset NAME] [--status STATUS]
manage.py import_examples --format rank1-hf|limrank-hf PATH [--dataset NAME]     (the authors' published files)
manage.py import_examples --format rank1-hf|limrank-hf --online [--dataset NAME] (the same, from the hub)"""
from django.core.management.base import CommandError
from django.db import transaction

from curation.models import Dataset
from curation.services.imports import ImportValidationError, examples_import, examples_import_authors

from ._import_base import ImportCommand


class Command(ImportCommand):
    help = ("Import training examples: the studio's JSONL (query, passage, reasoning, label) with --origin, or the "
            "authors' released data in its published schema with --format rank1-hf|limrank-hf (parquet, JSONL or "
            "a JSON array; --online reads the hub).")
    kind = "examples"

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", default="", help="path of the file to import (omit with --online)")
        parser.add_argument("--format", choices=["studio", "rank1-hf", "limrank-hf"], default="studio",
                            help="rank1-hf: jhu-clsp/rank1-training-data; limrank-hf: songtingyu/limrank-data "
                                 "(train_limrank.json); studio (default): the studio's JSONL, needs --origin")
        parser.add_argument("--online", action="store_true", help="rank1-hf/limrank-hf: load from the HF hub")
        parser.add_argument("--origin", choices=["rank1", "imported"], help="studio format: the examples' origin")
        parser.add_argument("--dataset", default="", help="put the examples in this dataset (created if missing)")
        parser.add_argument("--status", default=None,
                            help="status of the new examples (default: approved for rank1 and the authors' data, "
                                 "pending_review for imported)")

    def handle(self, *args, **options):
        if options["format"] == "studio":
            if not options["origin"]:
                raise CommandError("--origin rank1|imported is required for the studio format")
            if options["online"]:
                raise CommandError("--online reads the authors' data: use --format rank1-hf or limrank-hf")
        elif options["online"]:
            if options["file"]:
                raise CommandError("give a file or --online, not both")
            return self._import_online(**options)
        if not options["file"]:
            raise CommandError("FILE is required (or --online with --format rank1-hf|limrank-hf)")
        return super().handle(*args, **options)

    def _import_online(self, **options):
        try:
            result = self.run_import(None, progress=None, **options)
        except ImportValidationError as exc:
            raise CommandError(f"{exc} (nothing was imported)") from None
        self.stdout.write(self.style.SUCCESS(
            f"{result.kind}: {result.created} imported, {result.duplicates} duplicates skipped, {result.lines} rows read"))

    def run_import(self, path, *, progress, **options):
        with transaction.atomic():  # a rejected file leaves no new dataset behind either
            dataset = Dataset.objects.get_or_create(name=options["dataset"])[0] if options["dataset"] else None
            if options["format"] != "studio":
                return examples_import_authors(format=options["format"], file=path, online=options["online"],
                                               dataset=dataset, status=options["status"], progress=progress)
            return examples_import(
                file=path, filename=path, origin=options["origin"], dataset=dataset, status=options["status"], progress=progress
            )
