"""Celery tasks (gpu queue): thin wrappers that claim the row and call the service."""
from celery import shared_task

from limrank_app.jobs import job_claim, job_keepalive

from . import services
from .models import TrainingJob


@shared_task(name="training.tasks.training_job_execute_task")
def training_job_execute_task(job_id: int) -> None:
    # The claim makes a redelivered task a no-op, and lets a stale job (dead worker) be resumed, attempts capped.
    if not job_claim(TrainingJob, pk=job_id):
        return
    with job_keepalive(TrainingJob, pk=job_id):
        services.training_job_execute(job=TrainingJob.objects.get(pk=job_id))
