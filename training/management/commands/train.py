"""manage.py train --dataset-version ID [--backbone ...] [--base-model ...] [--preset NAME] [--set key=value ...] [--foreground]"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from curation.models import DatasetVersion
from limrank_app.jobs import job_claim
from training.models import TrainingJob
from training import services
from training.presets import BACKBONES, PRESETS, ConfigError, overrides_parse


class Command(BaseCommand):
    help = ("Launch a training job on a dataset version: queued on the Celery gpu queue, or run here with "
            "--foreground (tqdm progress).")

    def add_arguments(self, parser):
        parser.add_argument("--dataset-version", type=int, required=True, help="DatasetVersion id")
        parser.add_argument("--backbone", choices=list(BACKBONES))
        parser.add_argument("--base-model", help="local model directory or hub id (default: the preset's)")
        parser.add_argument("--preset", default="released", choices=[*PRESETS, "custom"])
        parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                            help="override any training setting, e.g. --set learning_rate=3e-5 --set epochs=2")
        parser.add_argument("--num-processes", type=int, default=1, help="> 1 runs under accelerate launch")
        parser.add_argument("--name", default="")
        parser.add_argument("--foreground", action="store_true", help="train in this process and show progress")

    def handle(self, *args, **opts):
        version = DatasetVersion.objects.filter(pk=opts["dataset_version"]).first()
        if version is None:
            raise CommandError(f"--dataset-version {opts['dataset_version']}: no such dataset version")
        try:
            overrides = overrides_parse(opts["sets"])
        except ConfigError as exc:
            raise CommandError(f"--set: {exc}") from None
        try:
            job = services.training_job_create(
                dataset_version=version, backbone=opts["backbone"], base_model=opts["base_model"],
                preset=None if opts["preset"] == "custom" else opts["preset"], overrides=overrides,
                num_processes=opts["num_processes"], name=opts["name"],
                **({"enqueue": False} if opts["foreground"] else {}),
            )
        except ValidationError as exc:
            details = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(f"invalid training job: {details}") from None
        if not opts["foreground"]:
            self.stdout.write(f"training job {job.pk} queued on the gpu queue (output {job.output_dir})")
            return
        if not job_claim(TrainingJob, pk=job.pk):
            raise CommandError(f"could not claim training job {job.pk}")
        self.stdout.write(f"training job {job.pk}: training in the foreground, output {job.output_dir}")
        job = services.training_job_execute(job=TrainingJob.objects.get(pk=job.pk), foreground=True)
        if job.status != "succeeded":
            raise CommandError(f"training job {job.pk} {job.status}: {job.error}")
        self.stdout.write(self.style.SUCCESS(
            f"training job {job.pk} succeeded: {job.progress_done} steps, artifact training-job-{job.pk} at "
            f"{job.artifact.path}"))
