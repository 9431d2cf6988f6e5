"""manage.py import_examples FILE --origin rank1|imported [--dataset NAME] [--status STATUS]."""
from django.db import transaction

from curation.models import Dataset
from curation.services.imports import examples_import

from ._import_base import ImportCommand


class Command(ImportCommand):
    help = "Import Rank1-format examples (JSONL of query, passage, reasoning, label) as origin rank1 or imported."
    kind = "examples"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--origin", choices=["rank1", "imported"], required=True)
        parser.add_argument("--dataset", default="", help="put the examples in this dataset (created if missing)")
        parser.add_argument("--status", default=None, help="status of the new examples (default: approved for rank1, pending_review for imported)")

    def run_import(self, path, *, progress, **options):
        with transaction.atomic():  # a rejected file leaves no new dataset behind either
            dataset = Dataset.objects.get_or_create(name=options["dataset"])[0] if options["dataset"] else None
            return examples_import(
                file=path, filename=path, origin=options["origin"], dataset=dataset, status=options["status"], progress=progress
            )
