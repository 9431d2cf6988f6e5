"""Entry point of one rank under `accelerate launch --num_processes N -m training.launch --job-id ID`.

The Celery worker that claimed the job starts this command and waits; every rank trains its shard,
rank 0 reports progress to the job row and writes the result for the parent to register.
"""
from __future__ import annotations

import argparse
import os

import django

# A rank is a process of its own: it sets Django up before it reads a model.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "limrank_app.settings")
django.setup()

from training.models import TrainingJob  # noqa: E402
from training.services import training_job_train, training_result_write  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one training job (one rank of an accelerate launch).")
    parser.add_argument("--job-id", type=int, required=True)
    parser.add_argument("--foreground", action="store_true", help="show tqdm progress on rank 0")
    args = parser.parse_args(argv)
    job = TrainingJob.objects.select_related("dataset_version").get(pk=args.job_id)
    result = training_job_train(job=job, foreground=args.foreground)
    if int(os.environ.get("RANK", "0")) == 0:
        training_result_write(job=job, result=result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
