"""manage.py import_personas FILE: PersonaHub JSONL ({"persona": ...})."""
from curation.services.imports import personas_import

from ._import_base import ImportCommand


class Command(ImportCommand):
    help = 'Import personas from a PersonaHub JSONL file ({"persona": ...}); all-or-nothing, duplicates skipped.'
    kind = "personas"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--source", default="personahub")

    def run_import(self, path, *, progress, **options):
        return personas_import(file=path, filename=path, source=options["source"], progress=progress)
