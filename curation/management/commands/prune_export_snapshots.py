"""Delete export snapshots that no ready dataset version uses any more (deleted versions, snapshots of an older
encoder revision), lock files no export holds, and temporary files a killed worker left behind.

    manage.py prune_export_snapshots                  # safe at any time, e.g. daily from cron
    manage.py prune_export_snapshots --all            # every snapshot (the next export of each writes it again)
"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from curation.exports import export_snapshots_prune, snapshot_dir


class Command(BaseCommand):
    help = "Delete export snapshots of versions that no longer exist, stale lock files and abandoned temporary files."

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="delete every snapshot, not only unused ones")
        parser.add_argument(
            "--partial-age", type=float, default=3600.0, metavar="SECONDS",
            help="delete temporary files untouched this long (default 3600; a writer touches its file on every block)",
        )

    def handle(self, *args, **opts):
        if opts["partial_age"] < 0:
            raise CommandError("--partial-age: a number of seconds >= 0")
        stats = export_snapshots_prune(everything=opts["all"], partial_age_s=opts["partial_age"])
        self.stdout.write(
            f"{snapshot_dir()}: deleted {stats['snapshots']} snapshot(s), {stats['partials']} temporary file(s), "
            f"{stats['locks']} lock file(s); {stats['bytes'] / 1e6:.1f} MB freed"
        )
