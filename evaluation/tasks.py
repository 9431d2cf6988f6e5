"""Celery tasks (gpu queue): thin, idempotent (the service claims the row)."""
from celery import shared_task
from . import services


@shared_task(name="evaluation.tasks.eval_run_execute_task")
def eval_run_execute_task(run_id: int) -> bool:
    return services.eval_run_execute(run_id=run_id)
