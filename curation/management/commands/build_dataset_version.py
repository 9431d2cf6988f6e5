"""Build a frozen dataset version from a filter and a mixing recipe (same service as the browser and the API).

    manage.py build_dataset_version --dataset limrank --mix rank1=14000 --mix synthetic=6000 --seed 12345
    manage.py build_dataset_version --dataset limrank --filters '{"status": "approved", "datasets": "all"}' --recipe '{"seed": 1}'

By default the build is queued as a job for a worker (progress on the version's page and at
/api/dataset-versions/<id>/build/); --foreground builds it here and renders its export files before returning.
"""
from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from curation.models import Dataset
from curation.services.datasets import dataset_version_build, dataset_version_build_queue


def _json_arg(value: str, what: str) -> dict:
    try:
        obj = json.loads(value)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--{what}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise CommandError(f"--{what}: expected a JSON object")
    return obj


class Command(BaseCommand):
    help = "Build a frozen, hashed version of a dataset from a filter and a mixing recipe."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="dataset name or id")
        parser.add_argument("--name", default="", help="a name for the version")
        parser.add_argument("--filters", default="{}", help='JSON, e.g. {"status": "approved", "datasets": "all"} (default: approved examples of the dataset)')
        parser.add_argument("--recipe", default="{}", help='JSON, e.g. {"seed": 12345, "mix": {"rank1": 14000, "synthetic": 6000}}')
        parser.add_argument("--mix", action="append", default=[], metavar="ORIGIN=COUNT", help="adds to the recipe's mix; repeatable")
        parser.add_argument("--seed", type=int, default=None, help="the recipe's seed")
        parser.add_argument("--all-datasets", action="store_true", help="take examples from every dataset")
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument("--foreground", action="store_true",
                            help="build here and render the export files before returning (no worker needed)")

    def handle(self, *args, **opts):
        ref = opts["dataset"]
        dataset = Dataset.objects.filter(name=ref).first() or (Dataset.objects.filter(pk=int(ref)).first() if ref.isdigit() else None)
        if dataset is None:
            raise CommandError(f"no dataset named or numbered {ref!r}")
        filters = _json_arg(opts["filters"], "filters")
        recipe = _json_arg(opts["recipe"], "recipe")
        if opts["all_datasets"]:
            filters["datasets"] = "all"
        if opts["seed"] is not None:
            recipe["seed"] = opts["seed"]
        for item in opts["mix"]:
            origin, sep, count = item.partition("=")
            if not sep or not count.strip().isdigit():
                raise CommandError(f"--mix {item!r}: expected ORIGIN=COUNT, e.g. rank1=14000")
            recipe.setdefault("mix", {})[origin.strip()] = int(count)

        if not opts["foreground"]:
            try:
                job = dataset_version_build_queue(dataset=dataset, filters=filters, recipe=recipe, created_by=None,
                                                  name=opts["name"])
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from None
            self.stdout.write(self.style.SUCCESS(
                f"{job.version} queued (id {job.version.pk}, build job {job.pk}): a worker writes its members and "
                f"renders its export files; follow it at /datasets/versions/{job.version.pk}/ or "
                f"/api/dataset-versions/{job.version.pk}/build/ (--foreground builds it here)"))
            return

        bar = None
        if not opts["no_progress"]:
            bar = tqdm(desc="members", unit="ex")

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.total = total
                bar.n = done
                bar.refresh()

        try:
            version = dataset_version_build(dataset=dataset, filters=filters, recipe=recipe, created_by=None, name=opts["name"], progress=progress,
                                             render_now=True)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        finally:
            if bar is not None:
                bar.close()
        self.stdout.write(self.style.SUCCESS(
            f"{version} built and its export files rendered: {version.example_count} examples, "
            f"content hash {version.content_hash} (id {version.pk})"
        ))
