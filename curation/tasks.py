"""Celery tasks of curation: thin, idempotent (a task claims its row first and does nothing when the claim fails).
Routed to the `llm` queue by CELERY_TASK_ROUTES ("curation.tasks.*")."""
from celery import shared_task

from curation.models import GenerationRun
from curation.services import generation
from limrank_app.jobs import job_claim, job_keepalive


@shared_task(name="curation.tasks.generation_run_execute_task")
def generation_run_execute_task(run_id):
    if not job_claim(GenerationRun, pk=run_id):
        return
    with job_keepalive(GenerationRun, pk=run_id):
        generation.generation_run_execute(run=GenerationRun.objects.get(pk=run_id))
