"""Celery tasks of curation: thin, idempotent (a task claims its row first and does nothing when the claim fails).
Routed to the `llm` queue by CELERY_TASK_ROUTES ("curation.tasks.*")."""
from celery import shared_task

from curation.models import BulkDecision, DatasetVersion, DatasetVersionBuild, GenerationRun
from curation.selectors.aggregates import REFRESH_TASK, aggregate_refresh
from curation.services import generation
from curation.services.review import bulk_decision_execute
from curation.services.datasets import RENDER_TASK, dataset_version_build_execute, dataset_version_render
from curation.services.diagnostics import (
    DIAGNOSE_TASK, dataset_version_diagnose, dataset_version_diagnose_claim, dataset_version_diagnose_enqueue,
)
from limrank_app.jobs import job_claim, job_keepalive


@shared_task(name="curation.tasks.generation_run_execute_task")
def generation_run_execute_task(run_id):
    if not job_claim(GenerationRun, pk=run_id):
        return
    with job_keepalive(GenerationRun, pk=run_id):
        generation.generation_run_execute(run=GenerationRun.objects.get(pk=run_id))


@shared_task(name=RENDER_TASK)
def dataset_version_render_task(version_id):
    """Render a version's export files. Idempotent without a claim: a file is renamed into place only once complete
    and every render writes the same bytes, so a redelivered task only finishes what is missing."""
    version = DatasetVersion.objects.select_related("dataset").filter(pk=version_id).first()
    if version is None or version.status == DatasetVersion.Status.FAILED:
        return
    dataset_version_render(version=version)
    dataset_version_diagnose_enqueue(version=version)  # once per version: a version already diagnosed is left alone


@shared_task(name=REFRESH_TASK)
def aggregate_refresh_task(name):
    """Compute a cached aggregate again (curation.selectors.aggregates); idempotent: it only overwrites the cache."""
    aggregate_refresh(name=name)


@shared_task(name=DIAGNOSE_TASK)
def dataset_version_diagnose_task(version_id):
    """Compute a version's diagnostics (progress on its row). Claims the queued diagnosis first: a redelivered task
    finds it running or done and does nothing."""
    if not dataset_version_diagnose_claim(version_id=version_id):
        return
    dataset_version_diagnose(version=DatasetVersion.objects.get(pk=version_id))


@shared_task(name=DatasetVersionBuild.execute_task)
def dataset_version_build_task(job_id):
    """Write a large version's members (progress on the job row). Claims the job first: a redelivered task finds it
    running or done and does nothing; a job whose worker died is claimed again and builds the same version."""
    if not job_claim(DatasetVersionBuild, pk=job_id):
        return
    with job_keepalive(DatasetVersionBuild, pk=job_id):
        dataset_version_build_execute(job=DatasetVersionBuild.objects.select_related("version").get(pk=job_id))


@shared_task(name=BulkDecision.execute_task)
def bulk_decision_execute_task(job_id):
    """Decide a large filtered set (progress on the job row); claimed first, idempotent (bulk_decision_execute)."""
    if not job_claim(BulkDecision, pk=job_id):
        return
    with job_keepalive(BulkDecision, pk=job_id):
        bulk_decision_execute(job=BulkDecision.objects.select_related("requested_by").get(pk=job_id))
