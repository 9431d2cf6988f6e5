"""manage.py import_seeds FILE: MS MARCO topics (qid<TAB>query) or JSONL seed queries."""
from curation.services.imports import seeds_import

from ._import_base import ImportCommand


class Command(ImportCommand):
    help = "Import seed queries from an MS MARCO TSV (qid<TAB>query) or a JSONL file; all-or-nothing, duplicates skipped."
    kind = "seeds"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--source", default="", help="source label (default: msmarco for TSV, jsonl for JSONL)")

    def run_import(self, path, *, progress, **options):
        return seeds_import(file=path, filename=path, source=options["source"], progress=progress)
