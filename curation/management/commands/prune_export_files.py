"""Delete rendered export files of dataset versions that no longer exist or failed, and temporary files a killed
render left behind. Safe at any time (e.g. daily from cron).

    manage.py prune_export_files
"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from curation.exports import export_dir, export_files_prune


class Command(BaseCommand):
    help = "Delete export files of versions that no longer exist or failed, and abandoned temporary files."

    def add_arguments(self, parser):
        parser.add_argument(
            "--partial-age", type=float, default=3600.0, metavar="SECONDS",
            help="delete temporary files untouched this long (default 3600; a render touches its file on every block)",
        )

    def handle(self, *args, **opts):
        if opts["partial_age"] < 0:
            raise CommandError("--partial-age: a number of seconds >= 0")
        stats = export_files_prune(partial_age_s=opts["partial_age"])
        self.stdout.write(f"{export_dir()}: deleted {stats['files']} file(s); {stats['bytes'] / 1e6:.1f} MB freed")
