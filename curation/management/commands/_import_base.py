"""Shared plumbing of the import commands: a tqdm bar over lines, errors as CommandError."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm
from curation.services.imports import ImportValidationError


class ImportCommand(BaseCommand):
    kind = ""

    def add_arguments(self, parser):
        parser.add_argument("file", help="path of the file to import")

    def run_import(self, path: str, **kwargs):
        raise NotImplementedError

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        bar = tqdm(total=0, unit="line", desc=f"import {self.kind}", disable=options.get("verbosity", 1) == 0, file=self.stderr._out)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            result = self.run_import(str(path), progress=progress, **options)
        except ImportValidationError as exc:
            raise CommandError(f"{exc} (nothing was imported)") from None
        finally:
            bar.close()
        self.stdout.write(self.style.SUCCESS(
            f"{result.kind}: {result.created} imported, {result.duplicates} duplicates skipped, {result.lines} lines read"
        ))
        return None
