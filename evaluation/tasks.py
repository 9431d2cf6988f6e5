"""Celery tasks (gpu queue): thin, idempotent (the service claims the row)."""
from celery import shared_task

from limrank_app.jobs import job_keepalive

from . import services
from .models import EvalRun


@shared_task(name="evaluation.tasks.eval_run_execute_task")
def eval_run_execute_task(run_id: int) -> bool:
    # The service claims the run; the keep-alive renews its heartbeat once it is this process's.
    with job_keepalive(EvalRun, pk=run_id):
        return services.eval_run_execute(run_id=run_id)
